/// The reader (SPEC §5.14) and writer checkpoints (SPEC §5.13): following a writer through the
/// WAL and the manifest, pinned checkpoints, the managed checkpoint's lifecycle, the memory bound,
/// GC races of FollowLatest, and the validation and error cases.
module Slate.Properties.ReaderTests

open System
open System.Threading
open System.Threading.Tasks
open Expecto
open FsCheck
open FsCheck.FSharp
open Slate
open Slate.Engine
open Slate.Model
open Slate.Properties.TestUtil
open Slate.Properties.EngineTests

/// Reader helpers shared with the admin and CLI tests.
module Rd =
    let settings: ReaderSettings =
        { ReaderSettings.defaults with
            ManifestPollInterval = TimeSpan.FromSeconds 30.0
            CheckpointLifetime = TimeSpan.FromMinutes 2.0
            RandomSeed = Some 11 }

    let openReader (store: IObjectStore) (path: string) (s: ReaderSettings) : Reader =
        Eng.await (Reader.OpenAsync(store, path, s, Eng.ct))

    let get (r: Reader) (k: string) : string option =
        Eng.await (r.GetAsync(Eng.utf8 k, Eng.readOpts, Eng.ct))
        |> Option.map Eng.valueOf

    let scan (r: Reader) : (string * string) list =
        Eng.drain (r.Scan(KeyRange.all, false, false))

    let refresh (r: Reader) : unit = Eng.awaitU (r.RefreshAsync Eng.ct)

    let close (r: Reader) : unit = Eng.awaitU (r.CloseAsync Eng.ct)

    let checkpoints (store: IObjectStore) (path: string) : Checkpoint list =
        match Eng.await (ManifestStore(store, path).ReadLatestAsync Eng.ct) with
        | Some m -> m.Manifest.Checkpoints
        | None -> []

    let checkpointAll (db: Db) : Checkpoint =
        Eng.await (db.CreateCheckpointAsync(CheckpointScope.All, Checkpoints.defaultOptions, Eng.ct))
        |> snd

    let pinned (cp: Checkpoint) : ReaderSettings =
        { settings with
            Mode = ReaderMode.Checkpoint
            CheckpointId = Some(Uuid.toGuid cp.Id) }

    let follow: ReaderSettings =
        { settings with
            Mode = ReaderMode.FollowLatest }

    let flushWal (db: Db) =
        Eng.awaitU (db.FlushAsync(FlushKind.Wal, Eng.ct))

    let flushMem (db: Db) =
        Eng.awaitU (db.FlushAsync(FlushKind.MemTable, Eng.ct))

    /// Polls `cond` every 50 ms for up to `seconds`.
    let eventually (seconds: float) (what: string) (cond: unit -> bool) : unit =
        let sw = Diagnostics.Stopwatch.StartNew()

        while not (cond ()) do
            if sw.Elapsed.TotalSeconds > seconds then
                failtestf "%s did not happen within %.0f s" what seconds

            Thread.Sleep 50

let private mem () = InMemoryObjectStore() :> IObjectStore

let private followTests =
    testList
        "following a writer"
        [ for mode in [ ReaderMode.ManagedCheckpoint; ReaderMode.FollowLatest ] do
              test (sprintf "%A: WAL-only data becomes visible, then flushed data after a manifest change" mode) {
                  let store = mem ()
                  let db = Eng.openDb store "db" Eng.options
                  Eng.put db "a" "1" |> ignore
                  Rd.flushWal db
                  let r = Rd.openReader store "db" { Rd.settings with Mode = mode }
                  Expect.equal (Rd.get r "a") (Some "1") "durable WAL row visible at open"
                  Eng.put db "b" "2" |> ignore
                  Expect.equal (Rd.get r "b") None "nothing new before a poll"
                  Rd.flushWal db
                  Rd.refresh r
                  Expect.equal (Rd.get r "b") (Some "2") "new WAL SST replayed on poll"
                  Eng.put db "a" "3" |> ignore
                  Eng.del db "b" |> ignore
                  Rd.flushMem db
                  let before = r.Manifest.Id
                  Rd.refresh r
                  Expect.isGreaterThan r.Manifest.Id before "rebuilt from a newer manifest"
                  Expect.equal (Rd.scan r) [ "a", "3" ] "flushed overwrite and delete visible"
                  Expect.equal r.MaxSeq db.LastCommittedSeq "reader caught up"
                  Rd.close r
                  Eng.awaitU (db.CloseAsync(None, Eng.ct))
              }

          test "the poller picks up flushed data within a poll interval" {
              let store = mem ()
              let db = Eng.openDb store "db" Eng.options

              let r =
                  Rd.openReader
                      store
                      "db"
                      { Rd.follow with
                          ManifestPollInterval = TimeSpan.FromMilliseconds 100.0 }

              Expect.equal (Rd.scan r) [] "empty at first"

              for i in 1..20 do
                  Eng.put db (sprintf "k%02d" i) (string i) |> ignore

              Rd.flushMem db
              Rd.eventually 5.0 "the reader seeing the flushed rows" (fun () -> (Rd.scan r).Length = 20)
              Eng.put db "w" "wal" |> ignore
              Rd.flushWal db
              Rd.eventually 5.0 "the reader seeing a WAL row" (fun () -> Rd.get r "w" = Some "wal")
              Rd.close r
              Eng.awaitU (db.CloseAsync(None, Eng.ct))
          }

          test "SkipWalReplay hides WAL-only data until it is in the manifest" {
              let store = mem ()
              let db = Eng.openDb store "db" Eng.options
              Eng.put db "a" "1" |> ignore
              Rd.flushWal db

              let r = Rd.openReader store "db" { Rd.follow with SkipWalReplay = true }

              Expect.equal (Rd.get r "a") None "WAL-only row not replayed"
              Rd.flushMem db
              Rd.refresh r
              Expect.equal (Rd.get r "a") (Some "1") "visible once in L0"
              Eng.put db "b" "2" |> ignore
              Rd.flushWal db
              Rd.refresh r
              Expect.equal (Rd.get r "b") None "newer WAL SST not replayed"
              Rd.close r
              Eng.awaitU (db.CloseAsync(None, Eng.ct))
          }

          test "MaxMemtableBytes stops the replay at a WAL boundary and never loses rows" {
              let store = mem ()
              let db = Eng.openDb store "db" Eng.options

              for i in 1..5 do
                  Eng.put db (sprintf "k%d" i) (String('x', 100)) |> ignore
                  Rd.flushWal db

              let r = Rd.openReader store "db" { Rd.follow with MaxMemtableBytes = 1L }
              // the fence and the first data WAL SST are replayed; then the memtable is full
              Expect.equal (Rd.scan r |> List.map fst) [ "k1" ] "replay stopped after the first row"
              Eng.put db "k6" "y" |> ignore
              Rd.flushWal db
              Rd.refresh r
              Expect.equal (Rd.scan r |> List.map fst) [ "k1" ] "still stopped until the manifest adopts the WAL"
              Rd.flushMem db
              Rd.refresh r

              Expect.equal
                  (Rd.scan r |> List.map fst)
                  [ "k1"; "k2"; "k3"; "k4"; "k5"; "k6" ]
                  "everything visible once in L0"

              Rd.close r
              Eng.awaitU (db.CloseAsync(None, Eng.ct))
          }

          test "merge rows need a merge operator, as in the writer" {
              let store = mem ()

              let db =
                  Eng.openDb
                      store
                      "db"
                      { Eng.options with
                          MergeOperator = Some Eng.concat }

              Eng.await (db.WriteAsync([ WriteOp.Merge(Eng.utf8 "m", Eng.utf8 "a", Ttl.Default) ], Eng.ct))
              |> ignore

              Eng.await (db.WriteAsync([ WriteOp.Merge(Eng.utf8 "m", Eng.utf8 "b", Ttl.Default) ], Eng.ct))
              |> ignore

              Rd.flushWal db
              let plain = Rd.openReader store "db" Rd.follow

              Eng.expectSlate SlateErrorKind.Invalid "get of a merge row" (fun () ->
                  plain.GetAsync(Eng.utf8 "m", Eng.readOpts, Eng.ct) :> Task)
              |> ignore

              let withOp =
                  Rd.openReader
                      store
                      "db"
                      { Rd.follow with
                          MergeOperator = Some Eng.concat }

              Expect.equal (Rd.get withOp "m") (Some "ab") "operands merged"
              Expect.equal (Rd.scan withOp) [ "m", "ab" ] "scan merges too"
              Rd.close plain
              Rd.close withOp
              Eng.awaitU (db.CloseAsync(None, Eng.ct))
          } ]

let private managedTests =
    testList
        "managed checkpoint"
        [ test "appears while the reader is open, is replaced on change and disappears after close" {
              let store = mem ()
              let db = Eng.openDb store "db" Eng.options
              Eng.put db "a" "1" |> ignore
              Rd.flushMem db
              let r = Rd.openReader store "db" Rd.settings
              let cp = r.Checkpoint.Value
              let cps = Rd.checkpoints store "db"
              Expect.equal (cps |> List.map (fun c -> c.Id)) [ cp.Id ] "one checkpoint, the reader's"
              Expect.equal cp.ManifestId r.Manifest.Id "it pins the manifest the reader serves"
              Expect.isSome cp.ExpireTimeS "it expires"
              Expect.isNone cp.Name "no name"
              Eng.put db "b" "2" |> ignore
              Rd.flushMem db
              Rd.refresh r
              let cp2 = r.Checkpoint.Value
              Expect.notEqual cp2.Id cp.Id "replaced"

              Expect.equal
                  (Rd.checkpoints store "db" |> List.map (fun c -> c.Id))
                  [ cp2.Id ]
                  "the old one was removed in the same update"

              Expect.equal (Rd.scan r) [ "a", "1"; "b", "2" ] "serves the new manifest"
              Rd.close r
              Expect.isEmpty (Rd.checkpoints store "db") "deleted at close"
              Eng.awaitU (db.CloseAsync(None, Eng.ct))
          }

          test "the expiry is extended when less than half the lifetime remains" {
              let store = mem ()
              let db = Eng.openDb store "db" Eng.options

              let r =
                  Rd.openReader
                      store
                      "db"
                      { Rd.settings with
                          CheckpointLifetime = TimeSpan.FromSeconds 2.0
                          ManifestPollInterval = TimeSpan.FromSeconds 1.0 }

              let first = r.Checkpoint.Value.ExpireTimeS.Value
              Thread.Sleep 2200
              Rd.refresh r
              let stored = Rd.checkpoints store "db" |> List.exactlyOne
              Expect.equal stored.Id r.Checkpoint.Value.Id "same checkpoint (no manifest change)"
              Expect.isGreaterThan stored.ExpireTimeS.Value first "expiry moved forward"
              Rd.close r
              Eng.awaitU (db.CloseAsync(None, Eng.ct))
          } ]

/// Random puts and deletes over a few keys.
let private genOps: Gen<(int * string option) list> =
    Gen.listOf (Gen.zip (Gen.choose (0, 7)) (Gen.optionOf (Gen.elements [ "x"; "y"; ""; "zz" ])))

let private apply (db: Db) (model: Map<string, string>) (ops: (int * string option) list) : Map<string, string> =
    ops
    |> List.fold
        (fun m (k, v) ->
            let key = sprintf "k%d" k

            match v with
            | Some v ->
                Eng.put db key v |> ignore
                Map.add key v m
            | None ->
                Eng.del db key |> ignore
                Map.remove key m)
        model

let private checkpointTests =
    testList
        "writer checkpoints"
        [ testPropertyWithConfig
              { config with maxTest = 8 }
              "a checkpoint (All) holds every write made before the call, whatever follows"
          <| Prop.forAll (Arb.fromGen (Gen.zip genOps genOps)) (fun (before, after) ->
              let store = mem ()
              let db = Eng.openDb store "db" Eng.options
              let model = apply db Map.empty before
              let cp = Rd.checkpointAll db
              let later = apply db model after
              Rd.flushWal db
              Rd.flushMem db
              let r = Rd.openReader store "db" (Rd.pinned cp)
              Expect.equal (Rd.scan r) (Map.toList model) "checkpoint reader = model at the call"
              Expect.equal r.Manifest.Id cp.ManifestId "pins its manifest"
              let live = Rd.openReader store "db" Rd.follow
              Expect.equal (Rd.scan live) (Map.toList later) "the database moved on"
              Rd.close r
              Rd.close live
              Eng.awaitU (db.CloseAsync(None, Eng.ct)))

          test "a checkpoint reader keeps the frozen state, including its WAL range" {
              let store = mem ()
              let db = Eng.openDb store "db" Eng.options
              Eng.put db "a" "1" |> ignore
              Rd.flushMem db
              Eng.put db "b" "2" |> ignore
              // Durable: published state only, nothing forced
              let _, cp =
                  Eng.await (db.CreateCheckpointAsync(CheckpointScope.Durable, Checkpoints.defaultOptions, Eng.ct))

              Eng.put db "a" "changed" |> ignore
              Rd.flushMem db
              let r = Rd.openReader store "db" (Rd.pinned cp)
              Expect.equal (Rd.scan r) [ "a", "1" ] "Durable checkpoint: the published state"
              Rd.refresh r
              Expect.equal (Rd.scan r) [ "a", "1" ] "no polling"
              Rd.close r
              Expect.isNonEmpty (Rd.checkpoints store "db") "a pinned reader deletes nothing"
              Eng.awaitU (db.CloseAsync(None, Eng.ct))
          }

          test "a source checkpoint copies its manifest id; a missing one is Data" {
              let store = mem ()
              let db = Eng.openDb store "db" Eng.options
              let first = Rd.checkpointAll db
              Eng.put db "a" "1" |> ignore

              let _, copy =
                  Eng.await (
                      db.CreateCheckpointAsync(
                          CheckpointScope.All,
                          { Checkpoints.defaultOptions with
                              Source = Some(Uuid.toGuid first.Id)
                              Name = Some "copy" },
                          Eng.ct
                      )
                  )

              Expect.equal copy.ManifestId first.ManifestId "same pinned manifest"
              Expect.equal copy.Name (Some "copy") "named"
              let missing = Guid.NewGuid()

              let e =
                  Eng.expectSlate SlateErrorKind.Data "missing source" (fun () ->
                      db.CreateCheckpointAsync(
                          CheckpointScope.Durable,
                          { Checkpoints.defaultOptions with
                              Source = Some missing },
                          Eng.ct
                      )
                      :> Task)

              Expect.stringContains e.Message "checkpoint missing" "message"
              Expect.stringContains e.Message (string missing) "names the id"
              Eng.awaitU (db.CloseAsync(None, Eng.ct))
          } ]

let private errorTests =
    testList
        "errors"
        [ test "no manifest is Data (failed to find latest manifest)" {
              for mode in [ ReaderMode.ManagedCheckpoint; ReaderMode.FollowLatest ] do
                  let e =
                      Eng.expectSlate SlateErrorKind.Data "open" (fun () ->
                          Reader.OpenAsync(mem (), "nothing", { Rd.settings with Mode = mode }, Eng.ct) :> Task)

                  Expect.stringContains e.Message "failed to find latest manifest" "message"
          }

          test "an unknown checkpoint is Data naming the id; Checkpoint mode without id is Invalid" {
              let store = mem ()
              let db = Eng.openDb store "db" Eng.options
              let id = Guid.NewGuid()

              let e =
                  Eng.expectSlate SlateErrorKind.Data "unknown checkpoint" (fun () ->
                      Reader.OpenAsync(
                          store,
                          "db",
                          { Rd.settings with
                              Mode = ReaderMode.Checkpoint
                              CheckpointId = Some id },
                          Eng.ct
                      )
                      :> Task)

              Expect.stringContains e.Message "checkpoint missing" "message"
              Expect.stringContains e.Message (string id) "names the id"

              Eng.expectSlate SlateErrorKind.Invalid "no id" (fun () ->
                  Reader.OpenAsync(
                      store,
                      "db",
                      { Rd.settings with
                          Mode = ReaderMode.Checkpoint },
                      Eng.ct
                  )
                  :> Task)
              |> ignore

              Expect.isEmpty (Rd.checkpoints store "db") "failed opens wrote nothing"
              Eng.awaitU (db.CloseAsync(None, Eng.ct))
          }

          test "lifetime below 1 s or below twice the poll interval is Invalid" {
              let store = mem ()
              let db = Eng.openDb store "db" Eng.options

              for (life, poll) in [ 0.5, 0.1; 3.0, 2.0; 10.0, 0.0 ] do
                  Eng.expectSlate SlateErrorKind.Invalid (sprintf "lifetime %g poll %g" life poll) (fun () ->
                      Reader.OpenAsync(
                          store,
                          "db",
                          { Rd.settings with
                              CheckpointLifetime = TimeSpan.FromSeconds life
                              ManifestPollInterval = TimeSpan.FromSeconds poll },
                          Eng.ct
                      )
                      :> Task)
                  |> ignore

              Expect.isEmpty (Rd.checkpoints store "db") "nothing written"
              Eng.awaitU (db.CloseAsync(None, Eng.ct))
          }

          test "after close every call is Closed(Clean)" {
              let store = mem ()
              let db = Eng.openDb store "db" Eng.options
              let r = Rd.openReader store "db" Rd.follow
              Rd.close r

              Eng.expectClosed CloseReason.Clean "get" (fun () ->
                  r.GetAsync(Eng.utf8 "a", Eng.readOpts, Eng.ct) :> Task)

              Eng.expectClosed CloseReason.Clean "scan" (fun () ->
                  task { r.Scan(KeyRange.all, false, false) |> ignore } :> Task)

              Eng.expectClosed CloseReason.Clean "close" (fun () -> r.CloseAsync Eng.ct)
              Eng.expectClosed CloseReason.Clean "refresh" (fun () -> task { do! r.RefreshAsync Eng.ct } :> Task)
              Eng.awaitU (db.CloseAsync(None, Eng.ct))
          }

          test "FollowLatest: a file removed by GC reloads the manifest and retries once, else Data" {
              let store = mem ()
              let db = Eng.openDb store "db" Eng.options
              Eng.put db "a" "1" |> ignore
              Rd.flushMem db
              let r = Rd.openReader store "db" Rd.follow
              let old = r.Manifest.Manifest.L0 |> List.exactlyOne
              // a "compaction" rewrites the row into a new L0 and drops the old SST
              Eng.put db "a" "1" |> ignore
              Rd.flushMem db
              let ms = ManifestStore(store, "db")
              let latest = (Eng.await (ms.ReadLatestAsync Eng.ct)).Value

              Eng.await (
                  ManifestCas.updateAsync
                      ms
                      latest
                      (fun _ remote -> remote)
                      (fun m ->
                          Transition.Write(
                              { m with
                                  L0 = m.L0 |> List.filter (fun h -> h.Id <> old.Id) },
                              ()
                          ))
                      (TimeSpan.FromSeconds 10.0)
                      TimeProvider.System
                      Eng.ct
              )
              |> ignore

              Eng.awaitU (store.DeleteAsync(db.Tables.KeyOf old.Id, Eng.ct))
              Expect.equal (Rd.get r "a") (Some "1") "retried against the latest manifest"
              // a fresh reader (cold caches); remove the only SST holding the key in every manifest
              let r2 = Rd.openReader store "db" Rd.follow
              let cur = r2.Manifest.Manifest.L0 |> List.exactlyOne
              Eng.awaitU (store.DeleteAsync(db.Tables.KeyOf cur.Id, Eng.ct))

              Eng.expectSlate SlateErrorKind.Data "second miss" (fun () ->
                  r2.GetAsync(Eng.utf8 "a", Eng.readOpts, Eng.ct) :> Task)
              |> ignore

              Rd.close r
              Rd.close r2
              Eng.awaitU (db.CloseAsync(None, Eng.ct))
          }

          test "FollowLatest: a scan that meets a file removed by GC reloads once and resumes after the last key" {
              let store = mem ()
              // several blocks per SST, so the scan fetches blocks after the files are gone
              let db =
                  Eng.openDb
                      store
                      "db"
                      { Eng.options with
                          L0SstSizeBytes = 1L <<< 20 }

              let keys p =
                  [ for i in 0..199 -> sprintf "%s%03d" p i ]

              let value (k: string) = k + String('v', 100)

              for p in [ "a"; "b"; "c" ] do
                  for k in keys p do
                      Eng.put db k (value k) |> ignore

                  Rd.flushMem db

              let probe = Rd.openReader store "db" Rd.follow
              let olds = probe.Manifest.Manifest.L0
              Rd.close probe
              Expect.equal olds.Length 3 "three L0 SSTs"
              // a fresh reader with cold caches on the three-L0 manifest
              let r = Rd.openReader store "db" Rd.follow
              let it = r.Scan(KeyRange.all, false, false)
              let first = Eng.await (it.NextAsync Eng.ct)
              Expect.equal (first |> Option.map (fun x -> Eng.str x.Key)) (Some "a000") "first key before GC"
              // a "compaction": one new L0 with every row, the old ones dropped from the manifest and deleted
              for p in [ "a"; "b"; "c" ] do
                  for k in keys p do
                      Eng.put db k (value k) |> ignore

              Rd.flushMem db
              let ms = ManifestStore(store, "db")
              let latest = (Eng.await (ms.ReadLatestAsync Eng.ct)).Value
              let oldIds = olds |> List.map (fun h -> h.Id) |> Set.ofList

              Eng.await (
                  ManifestCas.updateAsync
                      ms
                      latest
                      (fun _ remote -> remote)
                      (fun m ->
                          Transition.Write(
                              { m with
                                  L0 = m.L0 |> List.filter (fun h -> not (oldIds.Contains h.Id)) },
                              ()
                          ))
                      (TimeSpan.FromSeconds 10.0)
                      TimeProvider.System
                      Eng.ct
              )
              |> ignore

              for h in olds do
                  Eng.awaitU (store.DeleteAsync(db.Tables.KeyOf h.Id, Eng.ct))

              let rest = Eng.await (it.NextBatchAsync(1000, Eng.ct))

              Expect.equal
                  (rest |> List.map (fun x -> Eng.str x.Key, Eng.valueOf x))
                  [ for p in [ "a"; "b"; "c" ] do
                        for k in keys p do
                            if k <> "a000" then
                                k, value k ]
                  "the scan resumed after 'a000' against the latest manifest (no key repeated or lost)"

              // a second miss in the same scan is Data
              let r2 = Rd.openReader store "db" Rd.follow
              let it2 = r2.Scan(KeyRange.all, true, false)
              Expect.isSome (Eng.await (it2.NextAsync Eng.ct)) "the last key, before the second GC"

              for h in r2.Manifest.Manifest.L0 do
                  Eng.awaitU (store.DeleteAsync(db.Tables.KeyOf h.Id, Eng.ct))

              Eng.expectSlate SlateErrorKind.Data "second miss" (fun () -> it2.NextBatchAsync(1000, Eng.ct) :> Task)
              |> ignore

              Rd.close r
              Rd.close r2
              Eng.awaitU (db.CloseAsync(None, Eng.ct))
          } ]

let private hexOf (b: byte[]) = Bytes.toHex b

/// Live keys of a reader as (key hex, value hex), in key order.
let private scanHex (r: Reader) : (string * string) list =
    let it = r.Scan(KeyRange.all, false, false)
    let acc = ResizeArray()
    let mutable go = true

    while go do
        match Eng.await (it.NextAsync Eng.ct) with
        | Some row ->
            let v =
                match row.Value with
                | RowValue.Value v -> v
                | _ -> [||]

            acc.Add(hexOf row.Key, hexOf v)
        | None -> go <- false

    List.ofSeq acc

let private slatedbScan (root: string) (path: string) (extra: string list) : (string * string) list =
    SlateDbNode.node (SlateDbNode.readerScript ()) (root :: path :: extra) None
    |> fun text -> text.Split('\n', StringSplitOptions.RemoveEmptyEntries)
    |> Array.map (fun l ->
        let e = Text.Json.JsonDocument.Parse(l).RootElement
        e.GetProperty("key_hex").GetString(), e.GetProperty("value_hex").GetString())
    |> List.ofArray

let private interopTests =
    testList
        "interop"
        [ test "Slate reads SlateDB's checkpoint case through a Checkpoint-mode reader" {
              let case = IO.Path.Combine(compatDir (), "checkpoint")

              use doc =
                  Text.Json.JsonDocument.Parse(IO.File.ReadAllText(IO.Path.Combine(case, "expected.json")))

              let cp = doc.RootElement.GetProperty("checkpoints")[0]
              let id = Guid.Parse(cp.GetProperty("id").GetString())

              let expected =
                  [ for e in cp.GetProperty("entries").EnumerateArray() ->
                        e.GetProperty("key_hex").GetString(), e.GetProperty("value_hex").GetString() ]
                  |> List.sort

              let root = tempDir "rd-compat"

              try
                  copyTree (IO.Path.Combine(case, "db")) (IO.Path.Combine(root, "db"))
                  let store = LocalFileObjectStore(root) :> IObjectStore
                  let before = Eng.manifests store "db" |> List.length

                  let r =
                      Rd.openReader
                          store
                          "db"
                          { Rd.settings with
                              Mode = ReaderMode.Checkpoint
                              CheckpointId = Some id }

                  Expect.equal r.Manifest.Id (cp.GetProperty("manifest_id").GetUInt64()) "pinned manifest"
                  Expect.equal (scanHex r) expected "the checkpoint's entries, nothing newer"

                  for k in cp.GetProperty("deleted_keys").EnumerateArray() do
                      let key = Bytes.ofHex (k.GetString())
                      Expect.isNone (Eng.await (r.GetAsync(key, Eng.readOpts, Eng.ct))) "deleted key absent"

                  Rd.close r
                  Expect.equal (Eng.manifests store "db" |> List.length) before "a pinned reader writes nothing"
                  // a managed reader on the same database sees the latest state
                  let latest = Rd.openReader store "db" Rd.settings

                  let entries =
                      [ for e in doc.RootElement.GetProperty("entries").EnumerateArray() ->
                            e.GetProperty("key_hex").GetString(), e.GetProperty("value_hex").GetString() ]
                      |> List.sort

                  Expect.equal (scanHex latest) entries "managed reader = the expected latest state"
                  Rd.close latest
              finally
                  cleanup root
          }

          test "SlateDB 0.12.1 reads a Slate database with checkpoints (latest and pinned)" {
              let root = tempDir "rd-interop"

              try
                  let store = LocalFileObjectStore(root) :> IObjectStore
                  let db = Eng.openDb store "db" Eng.options
                  let rnd = Random 3

                  for i in 0..150 do
                      Eng.put db (sprintf "k%03d" (rnd.Next 120)) (String('v', rnd.Next 40)) |> ignore

                      if i % 17 = 0 then
                          Eng.del db (sprintf "k%03d" (rnd.Next 120)) |> ignore

                  let cp = Rd.checkpointAll db
                  let atCheckpoint = Eng.scanAll db Eng.readOpts

                  for i in 0..80 do
                      Eng.put db (sprintf "k%03d" (rnd.Next 160)) (sprintf "late-%d" i) |> ignore

                  Rd.flushMem db

                  for i in 0..20 do
                      Eng.del db (sprintf "k%03d" (rnd.Next 160)) |> ignore
                      Eng.put db (sprintf "w%02d" i) "wal-only" |> ignore

                  Rd.flushWal db
                  let admin = Admin.Create(store, "db", TimeProvider.System, Some 1)

                  Eng.await (
                      admin.CreateDetachedCheckpointAsync(
                          { Checkpoints.defaultOptions with
                              Name = Some "ops" },
                          Eng.ct
                      )
                  )
                  |> ignore

                  let latest = Eng.scanAll db Eng.readOpts
                  Eng.awaitU (db.CloseAsync(None, Eng.ct))

                  let toHex (rows: (string * string) list) =
                      rows |> List.map (fun (k, v) -> hexOf (Eng.utf8 k), hexOf (Eng.utf8 v))

                  Expect.equal
                      (slatedbScan root "db" [])
                      (toHex latest)
                      "SlateDB DbReader: latest content (WAL replayed)"

                  Expect.equal
                      (slatedbScan root "db" [ sprintf "--checkpoint=%O" (Uuid.toGuid cp.Id) ])
                      (toHex atCheckpoint)
                      "SlateDB pinned to Slate's checkpoint: the state at the call"

                  let pinned = Rd.openReader store "db" (Rd.pinned cp)
                  Expect.equal (Rd.scan pinned) atCheckpoint "Slate pinned reader agrees"
                  Rd.close pinned
              finally
                  cleanup root
          } ]

let allTests =
    testList "Reader" [ followTests; managedTests; checkpointTests; errorTests; interopTests ]
