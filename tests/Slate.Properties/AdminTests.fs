/// `Admin` / `SlateAdmin` (API.md "SlateAdmin"): manifest queries with half-open ranges and
/// checkpoint create/list/refresh/delete, merged with a concurrent writer; the C# facade of the
/// reader, the admin and `SlateClient.CreateCheckpointAsync`.
module Slate.Properties.AdminTests

open System
open System.Threading.Tasks
open Expecto
open Slate
open Slate.Engine
open Slate.Model
open Slate.Properties.TestUtil
open Slate.Properties.EngineTests
open Slate.Properties.ReaderTests

let private mem () = InMemoryObjectStore() :> IObjectStore

let private admin (store: IObjectStore) (path: string) : Admin =
    Admin.Create(store, path, TimeProvider.System, Some 5)

let private ids (ms: StoredManifest list) = ms |> List.map (fun m -> m.Id)

let private opts (life: float option) (name: string option) : Slate.Engine.CheckpointOptions =
    { Lifetime = life |> Option.map TimeSpan.FromSeconds
      Source = None
      Name = name }

let private engineTests =
    testList
        "engine"
        [ test "read and list manifests with half-open ranges" {
              let store = mem ()
              let a = admin store "db"
              Expect.isNone (Eng.await (a.ReadManifestAsync(None, Eng.ct))) "no database: no latest"
              Expect.isEmpty (Eng.await (a.ListManifestsAsync(None, None, Eng.ct))) "no manifests"
              let db = Eng.openDb store "db" Eng.options

              for i in 1..3 do
                  Eng.put db (string i) "v" |> ignore
                  Rd.flushMem db

              let latestId = db.ManifestId
              let all = Eng.await (a.ListManifestsAsync(None, None, Eng.ct))
              Expect.equal (ids all) [ 1UL .. latestId ] "every manifest, ascending"
              Expect.equal (ids (Eng.await (a.ListManifestsAsync(Some 2UL, Some 4UL, Eng.ct)))) [ 2UL; 3UL ] "[2, 4)"
              Expect.equal (ids (Eng.await (a.ListManifestsAsync(Some 3UL, None, Eng.ct)))) [ 3UL .. latestId ] "[3, ∞)"
              Expect.equal (ids (Eng.await (a.ListManifestsAsync(None, Some 2UL, Eng.ct)))) [ 1UL ] "[0, 2)"
              Expect.isEmpty (Eng.await (a.ListManifestsAsync(Some 3UL, Some 3UL, Eng.ct))) "from = to"
              Expect.isEmpty (Eng.await (a.ListManifestsAsync(Some 4UL, Some 2UL, Eng.ct))) "from > to"
              let latest = (Eng.await (a.ReadManifestAsync(None, Eng.ct))).Value
              Expect.equal latest.Id latestId "latest"
              Expect.equal latest.Manifest.L0.Length 3 "three L0 SSTs"
              let m2 = (Eng.await (a.ReadManifestAsync(Some 2UL, Eng.ct))).Value
              Expect.equal m2.Id 2UL "by id"
              Expect.isNone (Eng.await (a.ReadManifestAsync(Some 999UL, Eng.ct))) "absent id"
              Eng.awaitU (db.CloseAsync(None, Eng.ct))
          }

          test "create, list, refresh and delete checkpoints" {
              let store = mem ()
              let db = Eng.openDb store "db" Eng.options
              Eng.put db "a" "1" |> ignore
              Rd.flushMem db
              let a = admin store "db"
              let before = (Eng.await (a.ReadManifestAsync(None, Eng.ct))).Value.Id

              let c1 =
                  Eng.await (a.CreateDetachedCheckpointAsync(opts (Some 3600.0) (Some "nightly"), Eng.ct))

              Expect.equal c1.ManifestId (before + 1UL) "pins the version it is written in"
              Expect.equal c1.Name (Some "nightly") "name"
              let now = uint32 (DateTimeOffset.UtcNow.ToUnixTimeSeconds())
              Expect.isTrue (c1.ExpireTimeS.Value >= now + 3599u && c1.ExpireTimeS.Value <= now + 3601u) "expiry"

              let c2 =
                  Eng.await (a.CreateDetachedCheckpointAsync(opts None (Some "nightly"), Eng.ct))

              let c3 = Eng.await (a.CreateDetachedCheckpointAsync(opts None None, Eng.ct))
              Expect.isNone c2.ExpireTimeS "no lifetime: never expires"

              let listed = Eng.await (a.ListCheckpointsAsync(None, Eng.ct))
              Expect.equal (listed |> List.map (fun c -> c.Id)) [ c1.Id; c2.Id; c3.Id ] "all three"

              Expect.equal
                  (Eng.await (a.ListCheckpointsAsync(Some "nightly", Eng.ct))
                   |> List.map (fun c -> c.Id))
                  [ c1.Id; c2.Id ]
                  "by name"

              Expect.isEmpty (Eng.await (a.ListCheckpointsAsync(Some "night", Eng.ct))) "names match exactly"
              let r1 = Eng.await (a.RefreshCheckpointAsync(Uuid.toGuid c1.Id, None, Eng.ct))
              Expect.isNone r1.ExpireTimeS "refreshed to never"
              Expect.equal r1.ManifestId c1.ManifestId "still pins the same manifest"

              let r2 =
                  Eng.await (a.RefreshCheckpointAsync(Uuid.toGuid c2.Id, Some(TimeSpan.FromSeconds 60.0), Eng.ct))

              Expect.isSome r2.ExpireTimeS "refreshed to expire"

              let stored =
                  Eng.await (a.ListCheckpointsAsync(None, Eng.ct))
                  |> List.map (fun c -> c.Id, c.ExpireTimeS)

              Expect.equal stored [ c1.Id, None; c2.Id, r2.ExpireTimeS; c3.Id, None ] "refreshes stored"
              let unknown = Guid.NewGuid()

              let e =
                  Eng.expectSlate SlateErrorKind.Data "refresh unknown" (fun () ->
                      a.RefreshCheckpointAsync(unknown, None, Eng.ct) :> Task)

              Expect.stringContains e.Message (string unknown) "names the id"
              Eng.awaitU (a.DeleteCheckpointAsync(Uuid.toGuid c2.Id, Eng.ct))
              let lastId = (Eng.await (a.ReadManifestAsync(None, Eng.ct))).Value.Id
              Eng.awaitU (a.DeleteCheckpointAsync(unknown, Eng.ct))

              Expect.equal
                  (Eng.await (a.ReadManifestAsync(None, Eng.ct))).Value.Id
                  lastId
                  "deleting an absent id writes nothing"

              Expect.equal
                  (Eng.await (a.ListCheckpointsAsync(None, Eng.ct)) |> List.map (fun c -> c.Id))
                  [ c1.Id; c3.Id ]
                  "deleted"

              // the writer keeps every checkpoint through its own manifest writes
              Eng.put db "b" "2" |> ignore
              Rd.flushMem db

              Expect.equal
                  (Eng.await (a.ListCheckpointsAsync(None, Eng.ct)) |> List.map (fun c -> c.Id))
                  [ c1.Id; c3.Id ]
                  "kept by the writer's merge"

              let src =
                  Eng.await (
                      a.CreateDetachedCheckpointAsync(
                          { opts None None with
                              Source = Some(Uuid.toGuid c1.Id) },
                          Eng.ct
                      )
                  )

              Expect.equal src.ManifestId c1.ManifestId "source copies the manifest id"
              Eng.awaitU (db.CloseAsync(None, Eng.ct))
          }

          test "checkpoint edits on a missing or uninitialized database are Data; bad lifetimes Invalid" {
              let store = mem ()
              let a = admin store "db"

              let e =
                  Eng.expectSlate SlateErrorKind.Data "no manifest" (fun () ->
                      a.CreateDetachedCheckpointAsync(opts None None, Eng.ct) :> Task)

              Expect.stringContains e.Message "failed to find latest manifest" "message"
              Expect.isEmpty (Eng.await (a.ListCheckpointsAsync(None, Eng.ct))) "nothing to list"
              let ms = ManifestStore(store, "db")

              Eng.await (
                  ms.TryWriteAsync(
                      0UL,
                      { Manifest.initial with
                          Initialized = false },
                      Eng.ct
                  )
              )
              |> ignore

              Eng.expectSlate SlateErrorKind.Data "uninitialized" (fun () ->
                  a.CreateDetachedCheckpointAsync(opts None None, Eng.ct) :> Task)
              |> ignore

              Expect.equal (Eng.await (ms.ListIdsAsync Eng.ct)) [ 1UL ] "nothing written"
              let store2 = mem ()
              let db = Eng.openDb store2 "db" Eng.options

              Eng.expectSlate SlateErrorKind.Invalid "zero lifetime" (fun () ->
                  (admin store2 "db").CreateDetachedCheckpointAsync(opts (Some 0.0) None, Eng.ct) :> Task)
              |> ignore

              Eng.awaitU (db.CloseAsync(None, Eng.ct))
          }

          test "admin checkpoints merge with a concurrent writer (nothing lost on either side)" {
              let store = mem ()
              let db = Eng.openDb store "db" Eng.options
              let a = admin store "db"

              let writer =
                  task {
                      for i in 1..15 do
                          let! _ =
                              db.WriteAsync(
                                  [ WriteOp.Put(Eng.utf8 (sprintf "k%02d" i), Eng.utf8 "v", Ttl.Default) ],
                                  Eng.ct
                              )

                          do! db.FlushAsync(FlushKind.MemTable, Eng.ct)
                  }

              let created = ResizeArray()

              for _ in 1..15 do
                  created.Add((Eng.await (a.CreateDetachedCheckpointAsync(opts None None, Eng.ct))).Id)

              Eng.awaitU writer

              Expect.equal
                  (Eng.await (a.ListCheckpointsAsync(None, Eng.ct)) |> List.map (fun c -> c.Id))
                  (List.ofSeq created)
                  "every checkpoint present"

              let r = Rd.openReader store "db" Rd.follow
              Expect.equal (Rd.scan r).Length 15 "every L0 publish present"
              Rd.close r
              Eng.awaitU (db.CloseAsync(None, Eng.ct))
          } ]

let private facadeTests =
    testList
        "C# facade"
        [ testTask "SlateReader, SlateAdmin and CreateCheckpointAsync" {
              let store = ObjectStore.InMemory()

              let! (client: SlateClient) =
                  SlateClient.OpenAsync(
                      "db",
                      store,
                      SlateOptions(FlushInterval = Nullable(), Compactor = null, GarbageCollector = null)
                  )

              let! _ = client.PutAsync("a", "1")
              let! _ = client.PutAsync("b", "2")

              let! (cp: CheckpointResult) =
                  client.CreateCheckpointAsync(Slate.CheckpointScope.All, Slate.CheckpointOptions(Name = "before"))

              let! _ = client.PutAsync("a", "changed")
              do! client.FlushAsync(FlushType.Wal)
              let adminC = SlateAdmin.Create("db", store)
              let! (latest: ManifestInfo) = adminC.ReadManifestAsync()
              Expect.isNotNull latest "latest manifest"
              Expect.isTrue (latest.Id >= cp.ManifestId) "the checkpoint is at or below the latest"
              let! (pinnedManifest: ManifestInfo) = adminC.ReadManifestAsync(Nullable cp.ManifestId)
              Expect.equal pinnedManifest.L0.Count 1 "the checkpointed manifest has the flushed L0"
              Expect.isTrue (pinnedManifest.L0[0].Size > 0L) "SST size from the listing"
              Expect.equal (pinnedManifest.L0[0].FirstKey.ToArray()) (Eng.utf8 "a") "first key"
              let! (listed: Collections.Generic.IReadOnlyList<Slate.Checkpoint>) = adminC.ListCheckpointsAsync("before")
              Expect.equal (listed |> Seq.map (fun c -> c.Id) |> List.ofSeq) [ cp.Id ] "listed by name"
              Expect.isFalse listed[0].ExpiresAt.HasValue "never expires"

              let! (some: Collections.Generic.IReadOnlyList<ManifestInfo>) =
                  adminC.ListManifestsAsync(Nullable 1UL, Nullable 2UL)

              Expect.equal (some |> Seq.map (fun m -> m.Id) |> List.ofSeq) [ 1UL ] "[1, 2)"

              let! (pinned: SlateReader) =
                  SlateReader.OpenAsync(
                      "db",
                      store,
                      ReaderOptions(Mode = Slate.ReaderMode.Checkpoint, CheckpointId = Nullable cp.Id)
                  )

              let! a = pinned.GetStringAsync("a")
              Expect.equal a "1" "pinned value"
              let! (kv: KeyValue) = pinned.GetKeyValueAsync("b")
              Expect.equal kv.ValueString "2" "metadata read"
              let! (rows: Collections.Generic.IReadOnlyList<KeyValue>) = pinned.ScanPrefix("").NextBatchAsync(10)

              Expect.equal
                  (rows |> Seq.map (fun r -> r.KeyString, r.ValueString) |> List.ofSeq)
                  [ "a", "1"; "b", "2" ]
                  "scan"

              let! (live: SlateReader) = SlateReader.OpenAsync("db", store)
              let! a2 = live.GetStringAsync("a")
              Expect.equal a2 "changed" "managed reader sees the WAL tail"
              let! (during: Collections.Generic.IReadOnlyList<Slate.Checkpoint>) = adminC.ListCheckpointsAsync()
              Expect.equal during.Count 2 "the managed reader's checkpoint exists"
              do! live.CloseAsync()
              let! (after: Collections.Generic.IReadOnlyList<Slate.Checkpoint>) = adminC.ListCheckpointsAsync()
              Expect.equal after.Count 1 "and is gone after close"
              do! pinned.DisposeAsync()

              Eng.expectClosed CloseReason.Clean "closed reader" (fun () -> pinned.GetAsync(Eng.utf8 "a").AsTask())

              let! (refreshed: Slate.Checkpoint) =
                  adminC.RefreshCheckpointAsync(cp.Id, Nullable(TimeSpan.FromHours 1.0))

              Expect.isTrue refreshed.ExpiresAt.HasValue "refreshed"
              do! adminC.DeleteCheckpointAsync(cp.Id)
              let! (gone: Collections.Generic.IReadOnlyList<Slate.Checkpoint>) = adminC.ListCheckpointsAsync()
              Expect.equal gone.Count 0 "deleted"

              Eng.expectSlate SlateErrorKind.Invalid "no id" (fun () ->
                  SlateReader.OpenAsync("db", store, ReaderOptions(Mode = Slate.ReaderMode.Checkpoint)))
              |> ignore

              do! client.CloseAsync()
          }

          testTask
              "SlateAdmin: RunCompactorAsync compacts L0 into a sorted run; RunGarbageCollectionOnceAsync removes what is dead" {
              let store = ObjectStore.InMemory()

              let options () =
                  SlateOptions(FlushInterval = Nullable(), Compactor = null, GarbageCollector = null)

              let! (client: SlateClient) = SlateClient.OpenAsync("db", store, options ())

              for round in 0..5 do
                  for i in 0..9 do
                      let! _ = client.PutAsync(sprintf "k%02d" (round * 10 + i), sprintf "v%d" round)
                      ()

                  do! client.FlushAsync(FlushType.MemTable)

              do! client.CloseAsync()
              let adminC = SlateAdmin.Create("db", store)
              let! (before: ManifestInfo) = adminC.ReadManifestAsync()
              Expect.equal before.L0.Count 6 "six L0 SSTs before compaction"
              Expect.equal before.SortedRuns.Count 0 "no sorted run yet"
              let cts = new Threading.CancellationTokenSource()

              let running =
                  adminC.RunCompactorAsync(CompactorOptions(PollInterval = TimeSpan.FromMilliseconds 20.0), cts.Token)

              let deadline = DateTime.UtcNow.AddSeconds 60.0
              let mutable latest = before

              while (latest.L0.Count > 0 || latest.SortedRuns.Count = 0)
                    && DateTime.UtcNow < deadline do
                  do! Task.Delay 20
                  let! (m: ManifestInfo) = adminC.ReadManifestAsync()
                  latest <- m

              cts.Cancel()
              do! running // completes normally once cancelled
              cts.Dispose()
              Expect.equal latest.L0.Count 0 "L0 compacted away"
              Expect.equal latest.SortedRuns.Count 1 "into one sorted run"
              Expect.isGreaterThan latest.CompactorEpoch before.CompactorEpoch "the compactor fenced the epoch"

              let keys (prefix: string) : Task<Set<string>> =
                  task {
                      let! (listed: Collections.Generic.IReadOnlyList<ObjectMeta>) =
                          store.Inner.ListAsync("db/" + prefix, Threading.CancellationToken.None)

                      return listed |> Seq.map (fun o -> o.Key) |> Set.ofSeq
                  }

              let! sstsBefore = keys "compacted/"
              let! manifestsBefore = keys "manifest/"
              do! Task.Delay 50
              let gc = GarbageCollectorOptions(MinAge = TimeSpan.Zero)
              do! adminC.RunGarbageCollectionOnceAsync(gc)
              let! manifestsAfter = keys "manifest/"
              let! sstsPinned = keys "compacted/"
              Expect.isLessThan (Set.count manifestsAfter) (Set.count manifestsBefore) "old manifests deleted"
              Expect.equal sstsPinned sstsBefore "the compactor's checkpoint still pins the compacted L0 SSTs"

              let! (cps: Collections.Generic.IReadOnlyList<Slate.Checkpoint>) = adminC.ListCheckpointsAsync()
              Expect.isNonEmpty cps "the commit checkpoint"

              for c in cps do
                  do! adminC.DeleteCheckpointAsync(c.Id)

              do! Task.Delay 50
              do! adminC.RunGarbageCollectionOnceAsync(gc)
              let! sstsAfter = keys "compacted/"
              let! (final: ManifestInfo) = adminC.ReadManifestAsync()

              let live =
                  final.SortedRuns
                  |> Seq.collect (fun (r: SortedRunInfo) -> r.Ssts)
                  |> Seq.map (fun (s: SstInfo) -> "db/compacted/" + s.Id + ".sst")
                  |> Set.ofSeq

              // SPEC §5.12: the cutoff is at most the ULID time of l0_last_compacted (the newest
              // compacted L0), so L0 SSTs minted in that same millisecond are kept
              let ms (id: string) =
                  Ulid.timestampMs (Ulid.tryParse id).Value

              let newestL0 = before.L0 |> Seq.map (fun (s: SstInfo) -> ms s.Id) |> Seq.max

              let keptL0 =
                  before.L0
                  |> Seq.filter (fun (s: SstInfo) -> ms s.Id >= newestL0)
                  |> Seq.map (fun (s: SstInfo) -> "db/compacted/" + s.Id + ".sst")
                  |> Set.ofSeq

              Expect.equal sstsAfter (Set.union live keptL0) "only the sorted run's SSTs (and same-ms L0s) remain"
              Expect.isLessThan (Set.count keptL0) 6 "older L0 SSTs were deleted"
              let! (reopened: SlateClient) = SlateClient.OpenAsync("db", store, options ())

              for round in 0..5 do
                  for i in 0..9 do
                      let! v = reopened.GetStringAsync(sprintf "k%02d" (round * 10 + i))
                      Expect.equal v (sprintf "v%d" round) "every key reads back after compaction and GC"

              do! reopened.CloseAsync()
          } ]

/// Runs the CLI in-process against a local folder; returns (exit code, stdout, stderr).
let private cli (dir: string) (args: string list) : int * string * string =
    use out = new IO.StringWriter()
    use err = new IO.StringWriter()

    let argv = Array.ofList ([ "--store"; "file://" + dir; "--path"; "db" ] @ args)

    Expect.isTrue (Slate.Cli.Commands.handles argv) (sprintf "dispatched: %A" args)
    let code = Slate.Cli.Commands.run argv out err
    code, out.ToString(), err.ToString()

let private lines = outputLines

let private cliTests =
    testList
        "CLI"
        [ test "put, get, delete and scan" {
              let dir = tempDir "cli"

              try
                  let ok (args: string list) =
                      let code, out, err = cli dir args
                      Expect.equal code 0 (sprintf "%A exit code (stderr %s)" args err)
                      out

                  Expect.stringContains (ok [ "put"; "apple"; "red" ]) "put apple (seq 1)" "put output"
                  ok [ "put"; "avocado"; "green" ] |> ignore
                  ok [ "put"; "banana"; "yellow" ] |> ignore
                  ok [ "put"; "cherry"; "" ] |> ignore
                  Expect.stringContains (ok [ "delete"; "avocado" ]) "deleted avocado" "delete output"
                  Expect.equal (lines (ok [ "get"; "apple" ])) [ "red" ] "get"
                  let code, out, err = cli dir [ "get"; "avocado" ]
                  Expect.equal code 1 "a missing key exits 1"
                  Expect.equal out "" "nothing on stdout"
                  Expect.stringContains err "avocado not found" "stderr names the key"

                  Expect.equal
                      (lines (ok [ "scan" ]))
                      [ "key     value    seq"
                        "apple   red      1"
                        "banana  yellow   3"
                        "cherry  (empty)  4" ]
                      "human table"

                  let js = lines (ok [ "--json"; "scan"; "--prefix"; "b" ])
                  Expect.equal js.Length 1 "one row with prefix b"
                  let doc = Text.Json.JsonDocument.Parse(js.Head).RootElement
                  Expect.equal (doc.GetProperty("key").GetString()) "banana" "json key"
                  Expect.equal (doc.GetProperty("value").GetString()) "yellow" "json value"
                  Expect.equal (doc.GetProperty("seq").GetUInt64()) 3UL "json seq"

                  let keys (args: string list) =
                      lines (ok ("--json" :: "scan" :: args))
                      |> List.map (fun l -> Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("key").GetString())

                  Expect.equal (keys [ "--from"; "apple"; "--to"; "cherry" ]) [ "apple"; "banana" ] "[from, to)"
                  Expect.equal (keys [ "--from"; "b" ]) [ "banana"; "cherry" ] "from only"
                  Expect.equal (keys [ "--max"; "2" ]) [ "apple"; "banana" ] "max"
                  let code, _, err = cli dir [ "scan"; "--prefix"; "a"; "--from"; "a" ]
                  Expect.equal code 2 "conflicting options are a usage error"
                  Expect.stringContains err "not both" "explained"
              finally
                  cleanup dir
          }

          test "manifest, manifests and checkpoints create|list|refresh|delete" {
              let dir = tempDir "cli"

              try
                  let ok (args: string list) =
                      let code, out, err = cli dir args
                      Expect.equal code 0 (sprintf "%A exit code (stderr %s)" args err)
                      out

                  ok [ "put"; "k"; "v" ] |> ignore
                  let all = lines (ok [ "--json"; "manifests" ])

                  let ids =
                      all
                      |> List.map (fun l -> Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("id").GetUInt64())

                  Expect.equal ids [ 1UL .. uint64 ids.Length ] "contiguous from 1"

                  let some = lines (ok [ "manifests"; "--from"; "2"; "--to"; "3" ])

                  Expect.equal some.Length 2 "header and manifest 2"
                  Expect.stringStarts some[1] "2 " "manifest 2 only"
                  let latest = Text.Json.JsonDocument.Parse(ok [ "--json"; "manifest" ]).RootElement
                  Expect.equal (latest.GetProperty("id").GetUInt64()) (List.last ids) "latest"
                  Expect.equal (latest.GetProperty("l0").GetArrayLength()) 1 "one L0 (closed with flush)"
                  Expect.stringContains (ok [ "manifest"; "--id"; "1" ]) "manifest 1" "human manifest"
                  let code, _, err = cli dir [ "manifest"; "--id"; "999" ]
                  Expect.equal code 1 "absent manifest exits 1"
                  Expect.stringContains err "manifest 999 not found" "explained"

                  let created =
                      Text.Json.JsonDocument
                          .Parse(ok [ "--json"; "checkpoints"; "create"; "--name"; "nightly"; "--lifetime"; "3600" ])
                          .RootElement

                  let id = created.GetProperty("id").GetString()
                  Expect.equal (created.GetProperty("name").GetString()) "nightly" "name"

                  Expect.equal
                      (created.GetProperty("manifest_id").GetUInt64())
                      (List.last ids + 1UL)
                      "pins the version it is written in"

                  Expect.notEqual (created.GetProperty("expires").ValueKind) Text.Json.JsonValueKind.Null "expires"
                  let listed = ok [ "checkpoints"; "list"; "--name"; "nightly" ]
                  Expect.stringContains listed id "listed"
                  Expect.isEmpty (lines (ok [ "--json"; "checkpoints"; "list"; "--name"; "other" ])) "name filter"
                  let refreshed = ok [ "checkpoints"; "refresh"; "--id"; id ]
                  Expect.stringContains refreshed "never" "refreshed to never expire"

                  let code, _, err =
                      cli dir [ "checkpoints"; "refresh"; "--id"; string (Guid.NewGuid()) ]

                  Expect.equal code 1 "unknown checkpoint exits 1"
                  Expect.stringContains err "checkpoint missing" "explained"
                  Expect.stringContains (ok [ "checkpoints"; "delete"; "--id"; id ]) "deleted checkpoint" "deleted"
                  Expect.isEmpty (lines (ok [ "--json"; "checkpoints"; "list" ])) "gone"
                  let code, _, _ = cli dir [ "checkpoints"; "delete" ]
                  Expect.equal code 2 "missing --id is a usage error"
              finally
                  cleanup dir
          } ]

let allTests = testList "Admin" [ engineTests; facadeTests; cliTests ]
