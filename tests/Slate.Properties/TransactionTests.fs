/// Transactions (SPEC §6.5, API.md `SlateTransaction`) and snapshots pinning retention (SPEC §6.4):
/// read-your-own-writes, each kind of conflict, single use, rollback, empty commits, merges and TTL
/// inside a transaction, conflict-state pruning, `recent_snapshot_min_seq`, the C# facade, plus the
/// history checker and the model-based test of `TransactionModelTests`.
module Slate.Properties.TransactionTests

open System
open System.Threading.Tasks
open Expecto
open Slate
open Slate.Engine
open Slate.Model
open Slate.Properties.EngineTests.Eng

let private opts =
    { options with
        MergeOperator = Some concat }

let private fresh () =
    openDb (InMemoryObjectStore()) "txn/db" opts

let private txGet (t: Transaction) (k: string) : string option =
    await (t.GetAsync(utf8 k, readOpts, ct)) |> Option.map valueOf

let private txScan (t: Transaction) (range: KeyRange) (desc: bool) : (string * string) list =
    drain (t.Scan(range, readOpts, desc, false))

let private commit (t: Transaction) : WriteResult option = await (t.CommitAsync ct)

let private begin' (db: Db) (iso: IsolationLevel) = Transaction.Begin(db, iso)

let private range (lo: string) (hi: string) : KeyRange =
    match KeyRange.ofBounds (KeyBound.Included(utf8 lo)) (KeyBound.Excluded(utf8 hi)) with
    | Ok r -> r
    | Error e -> failtestf "bad range: %A" e

let private conflictOf (what: string) (t: Transaction) : SlateException =
    expectSlate SlateErrorKind.Transaction what (fun () -> t.CommitAsync ct)

let private both = [ IsolationLevel.Snapshot; IsolationLevel.SerializableSnapshot ]

let private closeDb (db: Db) = awaitU (db.CloseAsync(None, ct))

let private readYourWrites =
    testList
        "read your own writes"
        [ test "gets see the buffer, others do not, commit publishes it" {
              let db = fresh ()
              put db "a" "1" |> ignore
              put db "b" "1" |> ignore
              let t = begin' db IsolationLevel.Snapshot
              Expect.equal (txGet t "a") (Some "1") "reads the snapshot"
              t.Put(utf8 "a", utf8 "2", Ttl.Default)
              t.Delete(utf8 "b")
              t.Put(utf8 "c", utf8 "3", Ttl.Default)
              Expect.equal (txGet t "a") (Some "2") "own put"
              Expect.equal (txGet t "b") None "own delete"
              Expect.equal (txGet t "c") (Some "3") "own new key"
              Expect.equal (get db readOpts "a") (Some "1") "uncommitted writes are invisible to the db"
              Expect.equal (get db readOpts "c") None "uncommitted new key invisible"
              let r = commit t
              Expect.isSome r "a commit with writes returns a result"
              Expect.equal (get db readOpts "a") (Some "2") "committed put"
              Expect.equal (get db readOpts "b") None "committed delete"
              Expect.equal (get db readOpts "c") (Some "3") "committed new key"
              Expect.equal r.Value.Seq db.LastCommittedSeq "the batch took the last seq"
              closeDb db
          }
          test "reads stay at the start seq while others write" {
              let db = fresh ()
              put db "a" "1" |> ignore
              let t = begin' db IsolationLevel.Snapshot
              Expect.equal t.Seq db.LastCommittedSeq "starts at the last committed seq"
              put db "a" "2" |> ignore
              put db "z" "9" |> ignore
              awaitU (db.FlushAsync(FlushKind.MemTable, ct))
              Expect.equal (txGet t "a") (Some "1") "get after a later write and an L0 flush"
              Expect.equal (txScan t KeyRange.all false) [ "a", "1" ] "scan at the start seq"
              t.Rollback()
              closeDb db
          }
          test "scans merge the buffer in both orders, with seek" {
              let db = fresh ()

              for k in [ "a"; "b"; "c"; "d" ] do
                  put db k ("v" + k) |> ignore

              awaitU (db.FlushAsync(FlushKind.MemTable, ct))
              put db "e" "ve" |> ignore
              let t = begin' db IsolationLevel.Snapshot
              t.Put(utf8 "b", utf8 "B", Ttl.Default)
              t.Delete(utf8 "c")
              t.Put(utf8 "bb", utf8 "BB", Ttl.Default)
              t.Merge(utf8 "a", utf8 "+", Ttl.Default)
              t.Merge(utf8 "n", utf8 "N", Ttl.Default)
              t.Delete(utf8 "zz")

              let expected = [ "a", "va+"; "b", "B"; "bb", "BB"; "d", "vd"; "e", "ve"; "n", "N" ]

              Expect.equal (txScan t KeyRange.all false) expected "ascending"
              Expect.equal (txScan t KeyRange.all true) (List.rev expected) "descending"
              Expect.equal (txScan t (range "b" "e") false) [ "b", "B"; "bb", "BB"; "d", "vd" ] "bounded"
              Expect.equal (txScan t (range "b" "e") true) [ "d", "vd"; "bb", "BB"; "b", "B" ] "bounded descending"
              let it = t.Scan(KeyRange.all, readOpts, false, false)
              let first = await (it.NextAsync ct) |> Option.map (fun r -> str r.Key)
              Expect.equal first (Some "a") "first"
              awaitU (it.SeekAsync(utf8 "bc", ct))
              Expect.equal (drain it) [ "d", "vd"; "e", "ve"; "n", "N" ] "after seek"
              // a scan sees the buffer as of its creation
              let it2 = t.Scan(KeyRange.all, readOpts, false, false)
              t.Put(utf8 "a0", utf8 "late", Ttl.Default)
              Expect.equal (drain it2) expected "later buffered writes are not in an open scan"
              t.Rollback()
              closeDb db
          } ]

let private conflictsPerLevel (iso: IsolationLevel) : Test list =
    [ test (sprintf "%A: write-write with another transaction" iso) {
          let db = fresh ()
          put db "k" "0" |> ignore
          let t1 = begin' db iso
          let t2 = begin' db iso
          t1.Put(utf8 "k", utf8 "1", Ttl.Default)
          t2.Put(utf8 "k", utf8 "2", Ttl.Default)
          Expect.isSome (commit t1) "first committer wins"
          let before = db.LastCommittedSeq
          let e = conflictOf "second committer" t2
          Expect.stringContains e.Message "'k'" "the message names the key"
          Expect.equal (get db readOpts "k") (Some "1") "nothing of the loser applied"
          Expect.equal db.LastCommittedSeq before "nothing committed"
          // the conflicting batch consumed its seq (SPEC §6.5)
          let w = put db "x" "x"
          Expect.equal w.Seq (before + 2UL) "the failed commit consumed a seq"
          closeDb db
      }

      test (sprintf "%A: write-write with a plain write" iso) {
          let db = fresh ()
          let t = begin' db iso
          t.Put(utf8 "k", utf8 "t", Ttl.Default)
          put db "k" "plain" |> ignore
          conflictOf "plain write after start" t |> ignore
          Expect.equal (get db readOpts "k") (Some "plain") "plain write kept"
          closeDb db
      }

      test (sprintf "%A: merges and deletes conflict like puts" iso) {
          let db = fresh ()
          let t = begin' db iso
          t.Merge(utf8 "m", utf8 "t", Ttl.Default)
          await (db.WriteAsync([ WriteOp.Delete(utf8 "m") ], ct)) |> ignore
          conflictOf "merge vs delete" t |> ignore
          closeDb db
      }

      test (sprintf "%A: disjoint keys never conflict" iso) {
          let db = fresh ()
          let t1 = begin' db iso
          let t2 = begin' db iso
          Expect.equal (txGet t1 "a") None "t1 reads a"
          Expect.equal (txGet t2 "b") None "t2 reads b"
          t1.Put(utf8 "a", utf8 "1", Ttl.Default)
          t2.Put(utf8 "b", utf8 "2", Ttl.Default)
          put db "c" "plain" |> ignore
          Expect.isSome (commit t1) "t1"
          Expect.isSome (commit t2) "t2"
          Expect.equal (scanAll db readOpts) [ "a", "1"; "b", "2"; "c", "plain" ] "both applied"
          closeDb db
      }

      test (sprintf "%A: a write before the start is no conflict" iso) {
          let db = fresh ()
          put db "k" "old" |> ignore
          let t = begin' db iso
          Expect.equal (txGet t "k") (Some "old") "read"
          t.Put(utf8 "k", utf8 "new", Ttl.Default)
          Expect.isSome (commit t) "commit"
          closeDb db
      } ]

let private conflicts =
    testList
        "conflicts"
        (List.collect conflictsPerLevel both
         @ [ test "read-write: only SerializableSnapshot conflicts" {
                 let db = fresh ()
                 put db "r" "0" |> ignore
                 let si = begin' db IsolationLevel.Snapshot
                 let ssi = begin' db IsolationLevel.SerializableSnapshot

                 for t in [ si; ssi ] do
                     Expect.equal (txGet t "r") (Some "0") "read r"
                     t.Put(utf8 (sprintf "w%d" (int t.Isolation)), utf8 "x", Ttl.Default)

                 put db "r" "1" |> ignore
                 Expect.isSome (commit si) "SI ignores read-write"
                 let e = conflictOf "SSI read-write" ssi
                 Expect.stringContains e.Message "'r'" "names the read key"
                 Expect.equal (get db readOpts "w1") None "SSI loser not applied"
                 closeDb db
             }
             test "scanned range: SerializableSnapshot conflicts on a write inside it only" {
                 let db = fresh ()
                 put db "b" "0" |> ignore
                 let inside = begin' db IsolationLevel.SerializableSnapshot
                 let outside = begin' db IsolationLevel.SerializableSnapshot
                 let si = begin' db IsolationLevel.Snapshot

                 for t in [ inside; outside; si ] do
                     txScan t (range "a" "c") false |> ignore

                 inside.Put(utf8 "x1", utf8 "1", Ttl.Default)
                 outside.Put(utf8 "x2", utf8 "1", Ttl.Default)
                 si.Put(utf8 "x3", utf8 "1", Ttl.Default)
                 // a key never read, inside [a, c)
                 put db "bq" "phantom" |> ignore
                 let e = conflictOf "phantom in a scanned range" inside
                 Expect.stringContains e.Message "'bq'" "names the written key"
                 Expect.isSome (commit si) "SI ignores scanned ranges"
                 closeDb db

                 let db = fresh ()
                 let t = begin' db IsolationLevel.SerializableSnapshot
                 txScan t (range "a" "c") true |> ignore
                 t.Put(utf8 "x", utf8 "1", Ttl.Default)
                 put db "c" "at the excluded end" |> ignore
                 put db "0" "below" |> ignore
                 Expect.isSome (commit t) "writes outside the scanned range do not conflict"
                 closeDb db
             }
             test "empty commits: None without writing; SSI still validates reads" {
                 let db = fresh ()
                 let before = db.LastCommittedSeq
                 let t = begin' db IsolationLevel.Snapshot
                 txGet t "a" |> ignore
                 put db "a" "1" |> ignore
                 Expect.isNone (commit t) "an SI read-only commit returns None"
                 Expect.equal db.LastCommittedSeq (before + 1UL) "it wrote nothing"
                 let ssi = begin' db IsolationLevel.SerializableSnapshot
                 txGet ssi "a" |> ignore
                 put db "a" "2" |> ignore
                 conflictOf "SSI read-only with a stale read" ssi |> ignore
                 let ok = begin' db IsolationLevel.SerializableSnapshot
                 txGet ok "a" |> ignore
                 Expect.isNone (commit ok) "SSI read-only without conflict"
                 Expect.equal db.LastCommittedSeq (before + 2UL) "still nothing written"
                 closeDb db
             } ])

let private lifecycle =
    let completed (what: string) (f: unit -> Task) =
        let e = expectSlate SlateErrorKind.Invalid what f
        Expect.equal e.Message "transaction has already been completed" (sprintf "%s: message" what)

    let allCalls (t: Transaction) =
        completed "put" (fun () -> Task.Run(fun () -> t.Put(utf8 "a", utf8 "1", Ttl.Default)))
        completed "delete" (fun () -> Task.Run(fun () -> t.Delete(utf8 "a")))
        completed "merge" (fun () -> Task.Run(fun () -> t.Merge(utf8 "a", utf8 "1", Ttl.Default)))
        completed "get" (fun () -> t.GetAsync(utf8 "a", readOpts, ct))
        completed "scan" (fun () -> Task.Run(fun () -> t.Scan(KeyRange.all, readOpts, false, false) |> ignore))
        completed "commit" (fun () -> t.CommitAsync ct)
        completed "rollback" (fun () -> Task.Run(fun () -> t.Rollback()))

    testList
        "lifecycle"
        [ test "single use after commit, after rollback and after a conflict" {
              let db = fresh ()
              let t = begin' db IsolationLevel.Snapshot
              t.Put(utf8 "a", utf8 "1", Ttl.Default)
              commit t |> ignore
              allCalls t
              (t :> IDisposable).Dispose() // disposing a completed one does nothing
              let r = begin' db IsolationLevel.SerializableSnapshot
              r.Put(utf8 "b", utf8 "1", Ttl.Default)
              r.Rollback()
              allCalls r
              Expect.equal (get db readOpts "b") None "rolled back writes are discarded"
              let c = begin' db IsolationLevel.Snapshot
              c.Put(utf8 "a", utf8 "2", Ttl.Default)
              put db "a" "plain" |> ignore
              conflictOf "conflict" c |> ignore
              allCalls c
              closeDb db
          }
          test "dispose rolls back and unpins; conflict state is pruned" {
              let db = fresh ()
              let t = begin' db IsolationLevel.Snapshot
              let t2 = begin' db IsolationLevel.SerializableSnapshot
              Expect.equal db.Conflicts.ActiveCount 2 "two active"
              put db "p" "1" |> ignore
              put db "q" "1" |> ignore
              Expect.equal db.Conflicts.RecordCount 2 "batches are recorded while transactions are active"
              t.Put(utf8 "a", utf8 "1", Ttl.Default)
              (t :> IDisposable).Dispose()
              Expect.equal (get db readOpts "a") None "disposing rolled back"
              t2.Put(utf8 "b", utf8 "1", Ttl.Default)
              Expect.isSome (commit t2) "commit"
              Expect.equal db.Conflicts.ActiveCount 0 "none active"
              Expect.equal db.Conflicts.RecordCount 0 "nothing retained without an active transaction"
              put db "r" "1" |> ignore
              Expect.equal db.Conflicts.RecordCount 0 "nothing recorded without an active transaction"
              let old = begin' db IsolationLevel.Snapshot
              put db "s" "1" |> ignore
              let young = begin' db IsolationLevel.Snapshot
              put db "t" "1" |> ignore
              Expect.equal db.Conflicts.RecordCount 2 "both retained for the old one"
              old.Rollback()
              Expect.equal db.Conflicts.RecordCount 1 "only what the young one needs"
              young.Rollback()
              closeDb db
          }
          test "calls after close raise Closed; invalid input raises Invalid" {
              let db = fresh ()
              let t = begin' db IsolationLevel.Snapshot

              expectSlate SlateErrorKind.Invalid "empty key" (fun () ->
                  Task.Run(fun () -> t.Put([||], [||], Ttl.Default)))
              |> ignore

              expectSlate SlateErrorKind.Invalid "ExpireAfter 0" (fun () ->
                  Task.Run(fun () -> t.Put(utf8 "a", [||], Ttl.ExpireAfter TimeSpan.Zero)))
              |> ignore

              t.Put(utf8 "a", utf8 "1", Ttl.Default)
              closeDb db
              expectClosed CloseReason.Clean "get after close" (fun () -> t.GetAsync(utf8 "a", readOpts, ct))
              expectClosed CloseReason.Clean "commit after close" (fun () -> t.CommitAsync ct)

              expectClosed CloseReason.Clean "begin after close" (fun () ->
                  Task.Run(fun () -> begin' db IsolationLevel.Snapshot |> ignore))

              let plain = openDb (InMemoryObjectStore()) "txn/plain" options
              let p = begin' plain IsolationLevel.Snapshot

              expectSlate SlateErrorKind.Invalid "merge without operator" (fun () ->
                  Task.Run(fun () -> p.Merge(utf8 "a", utf8 "1", Ttl.Default)))
              |> ignore

              closeDb plain
          } ]

let private mergesAndTtl =
    testList
        "merges and TTL"
        [ test "merges inside a transaction fold onto the snapshot and the buffer" {
              let db = fresh ()
              put db "m" "x" |> ignore
              let t = begin' db IsolationLevel.Snapshot
              t.Merge(utf8 "m", utf8 "y", Ttl.Default)
              t.Merge(utf8 "m", utf8 "z", Ttl.Default)
              Expect.equal (txGet t "m") (Some "xyz") "operands over the snapshot value"
              t.Merge(utf8 "fresh", utf8 "1", Ttl.Default)
              Expect.equal (txGet t "fresh") (Some "1") "operand without a base"
              t.Put(utf8 "p", utf8 "base", Ttl.Default)
              t.Merge(utf8 "p", utf8 "+", Ttl.Default)
              Expect.equal (txGet t "p") (Some "base+") "operand over an own put"
              t.Delete(utf8 "d")
              t.Merge(utf8 "d", utf8 "after", Ttl.Default)
              Expect.equal (txGet t "d") (Some "after") "operand over an own delete"
              Expect.isSome (commit t) "commit"

              Expect.equal
                  (scanAll db readOpts)
                  [ "d", "after"; "fresh", "1"; "m", "xyz"; "p", "base+" ]
                  "committed merges"

              // an operand committed on top of a newer base
              let t2 = begin' db IsolationLevel.Snapshot
              t2.Merge(utf8 "m", utf8 "!", Ttl.Default)
              Expect.isSome (commit t2) "commit"
              Expect.equal (get db readOpts "m") (Some "xyz!") "merged at read"
              closeDb db
          }
          test "TTL of buffered puts and merges applies at commit" {
              let db = fresh ()
              let t = begin' db IsolationLevel.Snapshot
              let at = DateTimeOffset.UtcNow.AddHours 1.0
              t.Put(utf8 "after", utf8 "1", Ttl.ExpireAfter(TimeSpan.FromSeconds 10.0))
              t.Put(utf8 "at", utf8 "1", Ttl.ExpireAt at)
              t.Put(utf8 "never", utf8 "1", Ttl.NoExpiry)
              t.Merge(utf8 "m", utf8 "1", Ttl.ExpireAfter(TimeSpan.FromSeconds 5.0))

              let buffered = await (t.GetAsync(utf8 "at", readOpts, ct))

              Expect.equal
                  buffered.Value.ExpireTs
                  (Some(at.ToUnixTimeMilliseconds()))
                  "an absolute expiry is known before commit"

              let r = (commit t).Value

              let kv (k: string) =
                  (await (db.GetAsync(utf8 k, readOpts, ct))).Value

              Expect.equal (kv "after").CreateTs (Some r.CreateTs) "create_ts is the commit's"
              Expect.equal (kv "after").ExpireTs (Some(r.CreateTs + 10_000L)) "ExpireAfter counts from the commit"
              Expect.equal (kv "at").ExpireTs (Some(at.ToUnixTimeMilliseconds())) "ExpireAt"
              Expect.equal (kv "never").ExpireTs None "NoExpiry"
              Expect.equal (kv "m").ExpireTs (Some(r.CreateTs + 5_000L)) "merge TTL"

              let bad = begin' db IsolationLevel.Snapshot
              bad.Merge(utf8 "k", utf8 "1", Ttl.ExpireAfter(TimeSpan.FromSeconds 5.0))
              bad.Merge(utf8 "k", utf8 "2", Ttl.NoExpiry)

              expectSlate SlateErrorKind.Invalid "one key merged with two expiries" (fun () -> bad.CommitAsync ct)
              |> ignore

              Expect.equal (get db readOpts "k") None "nothing applied"
              closeDb db
          } ]

let private snapshotsPinRetention =
    test "recent_snapshot_min_seq follows the oldest active snapshot or transaction" {
        let store = InMemoryObjectStore() :> IObjectStore
        let db = openDb store "txn/pin" opts
        let ms = ManifestStore(store, "txn/pin")

        let latest () =
            match await (ms.ReadLatestAsync ct) with
            | Some m -> m.Manifest
            | None -> failtest "no manifest"

        let flush () =
            awaitU (db.FlushAsync(FlushKind.MemTable, ct))

        put db "a" "1" |> ignore
        put db "b" "1" |> ignore
        let snap = db.RegisterSnapshot()
        put db "a" "2" |> ignore
        let txn = begin' db IsolationLevel.Snapshot
        put db "a" "3" |> ignore
        flush ()
        let m = latest ()
        Expect.equal m.LastL0Seq db.LastCommittedSeq "published everything"
        Expect.equal m.RecentSnapshotMinSeq snap "the oldest of snapshot and transaction"
        db.ReleaseSnapshot snap
        put db "c" "1" |> ignore
        flush ()
        Expect.equal (latest ()).RecentSnapshotMinSeq txn.Seq "the transaction pins after the snapshot is gone"
        Expect.equal (txGet txn "a") (Some "2") "and still reads its version after flushes"
        txn.Rollback()
        put db "d" "1" |> ignore
        flush ()
        let m = latest ()
        Expect.equal m.RecentSnapshotMinSeq m.LastL0Seq "nothing active: the last L0 seq"
        closeDb db
    }

let private facade =
    let small () =
        SlateOptions(FlushInterval = Nullable(), BlockCacheBytes = (1L <<< 20), MetaCacheBytes = (1L <<< 20))

    let vt (t: ValueTask<'a>) : 'a = await (t.AsTask())

    test "C# SlateTransaction: buffered writes, commit handle, conflicts, single use, dispose" {
        let c =
            await (SlateClient.OpenAsync("txn/facade", ObjectStore.InMemory(), small ()))

        vt (c.PutAsync("a", "1")) |> ignore
        use t = c.BeginTransaction()
        Expect.equal t.Isolation Slate.IsolationLevel.Snapshot "default isolation"
        Expect.notEqual t.Id Guid.Empty "an id"
        t.Put("a", "2")
        t.Delete("gone")
        Expect.equal (vt (t.GetStringAsync "a")) "2" "own write"
        Expect.equal (vt (c.GetStringAsync "a")) "1" "not visible outside"
        let kv = vt (t.GetKeyValueAsync "a")
        Expect.equal kv.Seq UInt64.MaxValue "a buffered row reports no assigned seq"
        let it = t.Scan(Slate.KeyRange.All)
        let first = vt (it.NextAsync())
        Expect.equal first.ValueString "2" "scan sees own write"
        let h = vt (t.CommitAsync())
        Expect.isNotNull h "a handle"
        Expect.equal h.Seq (c.Engine.LastCommittedSeq) "handle seq"
        awaitU (h.AwaitDurableAsync())
        Expect.equal (vt (c.GetStringAsync "a")) "2" "committed"

        let e =
            expectSlate SlateErrorKind.Invalid "after commit" (fun () -> Task.Run(fun () -> t.Put("b", "1")))

        Expect.equal e.Message "transaction has already been completed" "message"
        let empty = c.BeginTransaction(Slate.IsolationLevel.SerializableSnapshot)
        Expect.isNull (vt (empty.CommitAsync())) "an empty commit returns null"
        let t1 = c.BeginTransaction()
        let t2 = c.BeginTransaction()
        t1.Put("k", "1")
        t2.Put("k", "2")
        vt (t1.CommitAsync()) |> ignore

        expectSlate SlateErrorKind.Transaction "conflict" (fun () -> t2.CommitAsync().AsTask())
        |> ignore

        let d = c.BeginTransaction()
        d.Put("disposed", "1")
        d.Dispose()
        Expect.isNull (vt (c.GetStringAsync "disposed")) "dispose rolled back"
        // SlateSnapshot and SlateTransaction pin recent_snapshot_min_seq until disposed
        let latest () =
            match await (c.Engine.ManifestStore.ReadLatestAsync ct) with
            | Some m -> m.Manifest
            | None -> failtest "no manifest"

        let snap = c.Snapshot()
        let pinned = c.BeginTransaction()
        vt (c.PutAsync("later", "1")) |> ignore
        awaitU (c.FlushAsync(FlushType.MemTable))
        Expect.equal (latest ()).RecentSnapshotMinSeq snap.Seq "the snapshot pins"
        snap.Dispose()
        vt (c.PutAsync("later", "2")) |> ignore
        awaitU (c.FlushAsync(FlushType.MemTable))
        Expect.equal (latest ()).RecentSnapshotMinSeq pinned.Seq "the transaction pins"
        pinned.Dispose()
        vt (c.PutAsync("later", "3")) |> ignore
        awaitU (c.FlushAsync(FlushType.MemTable))
        let m = latest ()
        Expect.equal m.RecentSnapshotMinSeq m.LastL0Seq "nothing pins after dispose"
        awaitU (c.CloseAsync())
    }

let allTests =
    testList
        "Transaction"
        [ readYourWrites
          conflicts
          lifecycle
          mergesAndTtl
          snapshotsPinRetention
          facade
          TransactionModelTests.allTests ]
