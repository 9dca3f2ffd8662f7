/// The garbage collector in the engine (SPEC §5.12, §4.18, §5.13) on the in-memory and the
/// local-folder store with a hand-moved clock: what one pass deletes and keeps, dry runs,
/// switches, boundary files, corrupt and foreign objects, a writer racing GC, and the embedded loop.
module Slate.Properties.GcTests

open System
open System.Threading
open System.Threading.Tasks
open Expecto
open Slate
open Slate.Engine
open Slate.Model
open Slate.Properties.TestUtil
open Slate.Properties.EngineTests.Eng
open Slate.Properties.GcFixtures

let manifestTests (b: Backend) =
    test (sprintf "%s: old manifests go except the latest and checkpointed ones; young ones stay" b.Name) {
        withStore b (fun store clock ->
            populate store clock 3 |> ignore
            let pinned, _ = addCheckpoint store clock id None
            let content = populate store clock 2
            let before = manifestIds store
            let young = runGc store settings clock
            Expect.equal (manifestIds store) before "nothing younger than min_age is deleted"
            Expect.isEmpty (dir young Paths.ManifestDir).Deleted "report: none deleted"
            clock.Advance(TimeSpan.FromMinutes 2.0)
            let r = runGc store settings clock
            let last = List.last before
            Expect.equal (manifestIds store) [ pinned; last ] "only the pinned and the latest manifest remain"

            Expect.equal
                (dir r Paths.ManifestDir).Deleted
                (before
                 |> List.filter (fun i -> i <> pinned && i <> last)
                 |> List.map mKey
                 |> List.sort)
                "report lists exactly the deleted manifests"

            Expect.equal r.ManifestBoundary (Some(last - 1UL)) "boundary = largest deleted id"

            Expect.equal
                (await (Gc.readBoundaryAsync store path ObjectName.ManifestBoundary ct))
                (last - 1UL)
                "boundary file advanced"

            Expect.equal (reopenScan store clock) content "the database opens and reads identically")
    }

let walTests (b: Backend) =
    test (sprintf "%s: WAL below replay_after goes, except a checkpoint's WAL range and fences" b.Name) {
        withStore b (fun store clock ->
            // WAL 1 = fence of the first open; rounds 1-2 are published (WAL 2, 3), then a WAL-only tail
            let db = openDb store path (dbOptions clock)

            for r in 1..2 do
                writeRound db "a" r 10
                awaitU (db.FlushAsync(FlushKind.MemTable, ct))

            writeRound db "t" 1 5
            awaitU (db.FlushAsync(FlushKind.Wal, ct))
            writeRound db "t" 2 5
            awaitU (db.FlushAsync(FlushKind.Wal, ct))
            awaitU (db.CloseAsync(None, ct))
            let m = (latest store).Manifest
            let tail = walIds store path |> List.filter (fun i -> i > m.ReplayAfterWalId)
            Expect.isNonEmpty tail "a WAL tail"
            // a reader's checkpoint pinning the state with the tail: range (replay_after, last tail id]
            let _, cpId =
                addCheckpoint
                    store
                    clock
                    (Manifest.withWalIdLastSeen (List.max tail))
                    (Some(uint32 (t0.ToUnixTimeSeconds() + 600L)))
            // the reopen fences at the next id and publishes the tail and new rows
            let db = openDb store path (dbOptions clock)
            let fence2 = List.max tail + 1UL
            writeRound db "b" 3 10
            awaitU (db.FlushAsync(FlushKind.Wal, ct))
            awaitU (db.FlushAsync(FlushKind.MemTable, ct))
            let content = scanAll db readOpts
            awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
            let replayAfter = (latest store).Manifest.ReplayAfterWalId
            Expect.isGreaterThan replayAfter fence2 "everything up to the second fence is published"
            let all = walIds store path
            clock.Advance(TimeSpan.FromMinutes 2.0)
            let r = runGc store settings clock

            let expectedGone =
                all
                |> List.filter (fun i -> i < replayAfter && i <> 1UL && i <> fence2 && not (List.contains i tail))

            Expect.isNonEmpty expectedGone "some WAL SSTs are collectable"

            Expect.equal
                (walIds store path)
                (all |> List.filter (fun i -> not (List.contains i expectedGone)))
                "kept: fences, pinned range, ≥ replay_after"

            Expect.equal (dir r Paths.WalDir).Deleted (expectedGone |> List.map wKey) "report: deleted WAL"
            Expect.equal (dir r Paths.WalDir).KeptFences [ wKey 1UL; wKey fence2 ] "report: fences kept"
            // the checkpoint expires: it is removed and its range goes too
            clock.Advance(TimeSpan.FromMinutes 10.0)
            let r = runGc store settings clock
            Expect.equal r.ExpiredCheckpoints [ cpId ] "expired checkpoint reported"
            Expect.isEmpty (latest store).Manifest.Checkpoints "expired checkpoint removed from the manifest"

            Expect.equal
                (walIds store path)
                ([ 1UL; fence2 ] @ (all |> List.filter (fun i -> i >= replayAfter)))
                "pinned range collected"
            // fences only with WalFences
            let r = runGc store { settings with WalFences = true } clock
            Expect.equal (dir r Paths.WalDir).Deleted [ wKey 1UL; wKey fence2 ] "fences deleted when enabled"
            Expect.equal (reopenScan store clock) content "the database opens and reads identically")
    }

let compactedTests (b: Backend) =
    test (sprintf "%s: unreferenced old compacted SSTs go; checkpointed, unpublished and new ones stay" b.Name) {
        withStore b (fun store clock ->
            let db = openDb store path (dbOptions clock)
            // an orphan older than every L0 (a failed job's output)
            let orphan = newUlid clock
            putRaw store (sKey orphan) [| 1uy; 2uy |]
            clock.Advance(TimeSpan.FromSeconds 1.0)

            for r in 1..4 do
                writeRound db "k" r (10 + r)
                clock.Advance(TimeSpan.FromSeconds 1.0)
                awaitU (db.FlushAsync(FlushKind.MemTable, ct))

            let content = scanAll db readOpts
            let l0s = (latest store).Manifest.L0 |> List.map (fun h -> h.Id)
            Expect.hasLength l0s 4 "four L0 SSTs"
            // a checkpoint pinning all four, expiring in 10 minutes
            let _, cp =
                addCheckpoint store clock id (Some(uint32 (clock.GetUtcNow().ToUnixTimeSeconds() + 600L)))

            clock.Advance(TimeSpan.FromSeconds 10.0)
            // an uploaded-but-unpublished L0 (newer than every published L0)
            let pending = newUlid clock
            putRaw store (sKey pending) [| 3uy |]
            clock.Advance(TimeSpan.FromSeconds 10.0)
            // compaction of the three oldest while the writer runs
            let consumed, output = compactOldest store clock 3 1UL
            let mutable adopted = false
            let deadline = DateTime.UtcNow.AddSeconds 10.0

            while not adopted && DateTime.UtcNow < deadline do
                let view, _ = db.ScanView(readOpts, None)
                adopted <- view.L0.Length = 1 && view.Compacted.Length = 1
                Thread.Sleep 20

            Expect.isTrue adopted "the writer adopted the compaction"
            Expect.equal (scanAll db readOpts) content "same content after the compaction"
            clock.Advance(TimeSpan.FromMinutes 2.0)
            let r = runGc store settings clock
            Expect.equal (dir r Paths.CompactedDir).Deleted [ sKey orphan ] "only the orphan goes"
            let present = keys store Paths.CompactedDir |> Set.ofList

            for u in l0s @ [ pending; output ] do
                Expect.isTrue (present.Contains(sKey u)) (sprintf "%O kept" u)

            Expect.equal (scanAll db readOpts) content "writer reads identically after GC"
            // the checkpoint expires: the consumed L0s go
            clock.Advance(TimeSpan.FromMinutes 10.0)
            let r = runGc store settings clock
            Expect.equal r.ExpiredCheckpoints [ cp ] "checkpoint expired"

            Expect.equal
                (dir r Paths.CompactedDir).Deleted
                (consumed |> List.map sKey |> List.sort)
                "consumed L0s deleted"

            Expect.equal
                (keys store Paths.CompactedDir |> Set.ofList)
                (Set.ofList [ sKey (List.head l0s); sKey pending; sKey output ])
                "remaining: the live L0, the pending upload, the output"

            Expect.equal (scanAll db readOpts) content "writer reads identically after GC"
            awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
            Expect.equal (reopenScan store clock) content "the database opens and reads identically")
    }

let compactionsDirTests (b: Backend) =
    test (sprintf "%s: old compactor states go after the compactions boundary; the latest stays" b.Name) {
        withStore b (fun store clock ->
            populate store clock 1 |> ignore

            for i in 1UL .. 3UL do
                writeCompactorState store i []

            let rec' = RecordingStore store
            clock.Advance(TimeSpan.FromMinutes 2.0)
            let r = runGc rec' settings clock

            let ck i =
                Paths.key path (ObjectName.Compactions i)

            Expect.equal (keys store Paths.CompactionsDir) [ ck 3UL ] "latest compactor state kept"
            Expect.equal r.CompactionsBoundary (Some 2UL) "boundary = 2"
            let log = rec'.Log

            let boundaryAt =
                log
                |> List.findIndex (fun (op, k) -> op = "put" && k = Paths.key path ObjectName.CompactionsBoundary)

            let firstDelete =
                log
                |> List.findIndex (fun (op, k) -> op = "delete" && (k = ck 1UL || k = ck 2UL))

            Expect.isLessThan boundaryAt firstDelete "boundary advanced before deleting")
    }

let dryRunTests (b: Backend) =
    test (sprintf "%s: a dry run changes nothing and reports what a real pass deletes" b.Name) {
        withStore b (fun store clock ->
            populate store clock 2 |> ignore

            let pinned, cp =
                addCheckpoint store clock id (Some(uint32 (t0.ToUnixTimeSeconds() + 30L)))

            let content = populate store clock 2
            let orphan = oldUlid ()
            putRaw store (sKey orphan) [| 9uy |]
            writeCompactorState store 1UL [ completedJob clock ]
            clock.Advance(TimeSpan.FromMinutes 2.0)
            let before = snapshot store
            let dry = runGc store { settings with DryRun = true } clock
            Expect.equal (snapshot store) before "a dry run changes no object"
            Expect.equal dry.ExpiredCheckpoints [ cp ] "the expired checkpoint is reported"
            Expect.hasLength (latest store).Manifest.Checkpoints 1 "and left in place"

            for d in dry.Directories do
                Expect.isEmpty d.Deleted (d.Directory + ": nothing deleted")

            let would d = (dir dry d).WouldDelete
            Expect.isNonEmpty (would Paths.ManifestDir) "manifests would go"
            Expect.isFalse (List.contains (mKey pinned) (would Paths.ManifestDir)) "not the pinned one"
            Expect.isNonEmpty (would Paths.WalDir) "WAL would go"
            Expect.equal (would Paths.CompactedDir) [ sKey orphan ] "the orphan would go"
            let prevLatest = (latest store).Id
            let real = runGc store settings clock
            Expect.equal real.ExpiredCheckpoints [ cp ] "the real pass expires the checkpoint"
            Expect.isEmpty (latest store).Manifest.Checkpoints "removed"
            // the real pass writes a new latest without the expired checkpoint and plans on it: the
            // formerly pinned manifest and the former latest go too
            Expect.equal
                (dir real Paths.ManifestDir).Deleted
                (List.sort (mKey pinned :: mKey prevLatest :: would Paths.ManifestDir))
                "manifests: the dry-run set plus the unpinned one and the former latest"

            Expect.equal (dir real Paths.WalDir).Deleted (would Paths.WalDir) "WAL: as reported"
            Expect.equal (dir real Paths.CompactedDir).Deleted (would Paths.CompactedDir) "compacted: as reported"
            Expect.equal (reopenScan store clock) content "the database opens and reads identically")
    }

let switchTests (b: Backend) =
    test (sprintf "%s: each resource switch turns exactly its folder on" b.Name) {
        withStore b (fun store clock ->
            populate store clock 3 |> ignore
            putRaw store (sKey (oldUlid ())) [| 1uy |]
            writeCompactorState store 1UL []
            writeCompactorState store 2UL [ completedJob clock ]
            clock.Advance(TimeSpan.FromMinutes 2.0)

            let off =
                { settings with
                    Manifests = false
                    Wal = false
                    CompactedSsts = false
                    CompactorState = false }

            let before = snapshot store
            let r = runGc store off clock
            Expect.equal (snapshot store) before "all switches off: nothing deleted"

            for d in r.Directories do
                Expect.isFalse d.Enabled (d.Directory + " reported off")

            let dirs =
                [ Paths.ManifestDir, (fun (s: GcSettings) -> { s with Manifests = true })
                  Paths.CompactionsDir, (fun s -> { s with CompactorState = true })
                  Paths.WalDir, (fun s -> { s with Wal = true })
                  Paths.CompactedDir, (fun s -> { s with CompactedSsts = true }) ]

            let mutable cur = off

            for d, on in dirs do
                cur <- on cur

                let listing () =
                    dirs |> List.map (fun (x, _) -> x, keys store x)

                let pre = listing ()
                let r = runGc store cur clock
                Expect.isNonEmpty (dir r d).Deleted (d + ": deletes once switched on")

                for (x, ks), (_, ks') in List.zip pre (listing ()) do
                    if x = d then
                        Expect.isLessThan ks'.Length ks.Length (x + " shrank")
                    else
                        Expect.equal ks' ks (x + " unchanged"))
    }

let foreignTests (b: Backend) =
    test (sprintf "%s: objects whose names do not parse are never deleted" b.Name) {
        withStore b (fun store clock ->
            populate store clock 2 |> ignore
            writeCompactorState store 1UL [ completedJob clock ]
            let u = Ulid.toString (oldUlid ())

            let junk =
                [ "wal/00000000000000000001.sst.tmp"
                  "wal/abc.sst"
                  "manifest/00000000000000000000.manifest"
                  "manifest/1.manifest"
                  "compactions/x.compactions"
                  "compacted/" + u + ".sst.bak"
                  "compacted/nested/" + u + ".sst"
                  "compacted/" + u.Substring 1 + ".sst" ]
                |> List.map (fun k -> path + "/" + k)

            for k in junk do
                putRaw store k [| 0uy |]

            clock.Advance(TimeSpan.FromMinutes 2.0)
            let r = runGc store { settings with WalFences = true } clock
            let present = snapshot store |> List.map fst |> Set.ofList

            for k in junk do
                Expect.isTrue (present.Contains k) (k + " kept")

            let ignored = r.Directories |> List.collect (fun d -> d.Ignored) |> Set.ofList
            Expect.equal ignored (Set.ofList junk) "every foreign name is reported as ignored"
            Expect.isNonEmpty (dir r Paths.WalDir).Deleted "the pass did collect parsed objects")
    }

let corruptTests (b: Backend) =
    test (sprintf "%s: a corrupt manifest fails the pass with Data naming it; nothing is deleted" b.Name) {
        withStore b (fun store clock ->
            populate store clock 2 |> ignore
            let pinned, _ = addCheckpoint store clock id None
            populate store clock 2 |> ignore
            putRaw store (mKey pinned) [| 1uy; 2uy; 3uy |]
            clock.Advance(TimeSpan.FromMinutes 2.0)
            let before = snapshot store

            let e =
                expectSlate SlateErrorKind.Data "pinned manifest corrupt" (fun () ->
                    Gc.runOnceAsync store path settings clock ct :> Task)

            Expect.stringContains e.Message (mKey pinned) "the message names the manifest"
            Expect.equal (snapshot store) before "nothing deleted"
            let last = List.last (manifestIds store)
            putRaw store (mKey last) [| 7uy |]
            let before = snapshot store

            let e =
                expectSlate SlateErrorKind.Data "latest manifest corrupt" (fun () ->
                    Gc.runOnceAsync store path settings clock ct :> Task)

            Expect.stringContains e.Message (mKey last) "the message names the manifest"
            Expect.equal (snapshot store) before "nothing deleted"

            expectSlate SlateErrorKind.Data "no database" (fun () ->
                Gc.runOnceAsync store "gc/none" settings clock ct :> Task)
            |> ignore

            expectSlate SlateErrorKind.Invalid "negative MinAge" (fun () ->
                Gc.runOnceAsync
                    store
                    path
                    { settings with
                        MinAge = TimeSpan.FromSeconds -1.0 }
                    clock
                    ct
                :> Task)
            |> ignore)
    }

let boundaryTests (b: Backend) =
    test (sprintf "%s: the manifest boundary is advanced before deleting and stops a zombie" b.Name) {
        withStore b (fun store clock ->
            populate store clock 3 |> ignore
            let recorder = RecordingStore store
            clock.Advance(TimeSpan.FromMinutes 2.0)
            let r = runGc recorder settings clock
            let bKey = Paths.key path ObjectName.ManifestBoundary
            let deleted = (dir r Paths.ManifestDir).Deleted |> Set.ofList
            Expect.isNonEmpty deleted "manifests deleted"
            let log = recorder.Log
            let boundaryAt = log |> List.findIndex (fun (op, k) -> op = "put" && k = bKey)

            let firstDelete =
                log |> List.findIndex (fun (op, k) -> op = "delete" && deleted.Contains k)

            Expect.isLessThan boundaryAt firstDelete "boundary written before the first manifest delete"
            let boundary = r.ManifestBoundary.Value
            Expect.equal (await (Gc.readBoundaryAsync store path ObjectName.ManifestBoundary ct)) boundary "stored"
            // a zombie writer recreating a deleted id loses
            let ms = ManifestStore(store, path)
            Expect.isFalse (await (ms.TryWriteAsync(boundary - 1UL, Manifest.initial, ct))) "zombie write lost"
            // never decreases; advances on demand
            awaitU (Gc.ensureBoundaryAsync store path ObjectName.ManifestBoundary 1UL ct)
            Expect.equal (await (Gc.readBoundaryAsync store path ObjectName.ManifestBoundary ct)) boundary "kept"
            awaitU (Gc.ensureBoundaryAsync store path ObjectName.ManifestBoundary 1000UL ct)
            Expect.equal (await (Gc.readBoundaryAsync store path ObjectName.ManifestBoundary ct)) 1000UL "raised")
    }

let noBoundaryTests (b: Backend) =
    test (sprintf "%s: with boundary files off nothing is written to gc/; failed deletes are retried" b.Name) {
        withStore b (fun store clock ->
            populate store clock 3 |> ignore
            clock.Advance(TimeSpan.FromMinutes 2.0)
            let recorder = RecordingStore store
            let victim = mKey 2UL
            recorder.FailDeletes <- Set.ofList [ victim ]

            let r =
                runGc
                    recorder
                    { settings with
                        BoundaryFilesEnabled = false }
                    clock

            Expect.isEmpty (keys store Paths.GcDir) "no boundary files"
            Expect.equal ((dir r Paths.ManifestDir).Failed |> List.map fst) [ victim ] "the failure is reported"
            Expect.isFalse (List.contains victim (dir r Paths.ManifestDir).Deleted) "not reported deleted"
            Expect.contains (manifestIds store) 2UL "still there"
            Expect.isNonEmpty (dir r Paths.ManifestDir).Deleted "the other deletes went through"
            recorder.FailDeletes <- Set.empty
            let r = runGc recorder settings clock
            Expect.equal (dir r Paths.ManifestDir).Deleted [ victim ] "retried next pass")
    }

let allTests =
    testList
        "Gc"
        [ for b in backends do
              yield manifestTests b
              yield walTests b
              yield compactedTests b
              yield compactionsDirTests b
              yield dryRunTests b
              yield switchTests b
              yield foreignTests b
              yield corruptTests b
              yield boundaryTests b
              yield noBoundaryTests b
          yield GcLoopTests.allTests ]
