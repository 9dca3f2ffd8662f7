/// The object-store conformance suite (SPEC §2), run against every backend, plus a model-based
/// property and backend-specific checks.
module Slate.Properties.ObjectStoreTests

open System
open System.Collections.Generic
open System.IO
open System.Threading
open System.Threading.Tasks
open Expecto
open FsCheck
open FsCheck.FSharp
open Slate.Engine

let private ct = CancellationToken.None

let private bytesOf (s: string) : byte[] = Text.Encoding.UTF8.GetBytes s

let private put (s: IObjectStore) (key: string) (data: byte[]) (mode: PutMode) : Task<PutResult> =
    s.PutAsync(key, ReadOnlyMemory data, mode, null, ct)

let private randomBytes (seed: int) (n: int) : byte[] =
    let b = Array.zeroCreate n
    Random(seed).NextBytes b
    b

/// Awaits `f` and checks that it fails with an `ObjectStoreException` of `kind`.
let private expectKind (kind: ObjectStoreErrorKind) (what: string) (f: unit -> Task<'a>) : Task<unit> =
    task {
        let! outcome =
            task {
                try
                    let! _ = f ()
                    return None
                with :? ObjectStoreException as e ->
                    return Some e
            }

        match outcome with
        | None -> failtestf "%s: expected %A but the call succeeded" what kind
        | Some e -> Expect.equal e.Kind kind $"{what}: error kind ({e.Message})"
    }

/// Outcome of one contender in a race: `Ok etag` or the error kind.
let private attempt (f: unit -> Task<PutResult>) : Task<Result<string, ObjectStoreErrorKind>> =
    task {
        try
            let! r = f ()
            return Ok r.ETag
        with :? ObjectStoreException as e ->
            return Error e.Kind
    }

/// Starts 16 contenders of `contend` (each with its own content) at once and checks that exactly
/// one wins, the others fail with `loserKind`, and the stored object is the winner's.
let private race
    (s: IObjectStore)
    (key: string)
    (loserKind: ObjectStoreErrorKind)
    (contend: byte[] -> Task<PutResult>)
    : Task<unit> =
    task {
        let contents = Array.init 16 (fun i -> bytesOf $"contender {i:D2} for {key}")
        use start = new ManualResetEventSlim(false)

        let contenders =
            contents
            |> Array.map (fun c ->
                Task.Run<Result<string, ObjectStoreErrorKind>>(fun () ->
                    start.Wait()
                    attempt (fun () -> contend c)))

        start.Set()
        let! outcomes = Task.WhenAll contenders

        let winners =
            outcomes |> Array.indexed |> Array.filter (fun (_, o) -> Result.isOk o)

        Expect.hasLength winners 1 $"{key}: exactly one winner"

        let losers =
            outcomes
            |> Array.choose (fun o ->
                match o with
                | Error k -> Some k
                | Ok _ -> None)

        Expect.allEqual losers loserKind $"{key}: losers fail with {loserKind}"
        let winner, outcome = winners.[0]
        let! g = s.GetAsync(key, ct)
        Expect.equal g.Data contents.[winner] "winner's content"
        Expect.equal (Ok g.Meta.ETag) outcome "winner's etag"
    }

/// A clock that stands still until moved.
type private ManualClock(start: DateTimeOffset) =
    inherit TimeProvider()
    let mutable now = start
    member _.Advance(d: TimeSpan) = now <- now + d
    override _.GetUtcNow() = now

/// A local store on a fresh temporary directory that is deleted on disposal.
type private TempLocalStore(clock: TimeProvider) =
    let dir =
        Path.Combine(Path.GetTempPath(), "slate-objstore-" + Guid.NewGuid().ToString("N"))

    let inner = LocalFileObjectStore(dir, clock)
    let store = inner :> IObjectStore
    new() = new TempLocalStore(TimeProvider.System)
    member _.Root: string = dir
    member _.Inner: LocalFileObjectStore = inner

    interface IObjectStore with
        member _.PutAsync(k, d, m, a, c) = store.PutAsync(k, d, m, a, c)
        member _.GetAsync(k, c) = store.GetAsync(k, c)
        member _.GetRangeAsync(k, s, e, c) = store.GetRangeAsync(k, s, e, c)
        member _.HeadAsync(k, c) = store.HeadAsync(k, c)
        member _.ListAsync(p, c) = store.ListAsync(p, c)
        member _.DeleteAsync(k, c) = store.DeleteAsync(k, c)
        member _.Describe = store.Describe

    interface IDisposable with
        member _.Dispose() =
            if Directory.Exists dir then
                Directory.Delete(dir, true)

let private dispose (s: IObjectStore) =
    match s with
    | :? IDisposable as d -> d.Dispose()
    | _ -> ()

/// A test on a fresh store from `makeStore`, disposed afterwards when it is `IDisposable`.
let private withStore (makeStore: unit -> IObjectStore) (name: string) (body: IObjectStore -> Task<unit>) : Test =
    testCaseTask name (fun () ->
        task {
            let store = makeStore ()

            try
                do! body store
            finally
                dispose store
        })

/// The conformance suite every `IObjectStore` backend must pass. `makeStore` returns a fresh,
/// empty store (disposed after the test when it implements `IDisposable`).
let conformance (name: string) (makeStore: unit -> IObjectStore) : Test =
    let case = withStore makeStore

    testList
        name
        [ case "round trip of an empty and a 1 MiB object"
          <| fun s ->
              task {
                  for key, data in [ "db/empty", [||]; "db/big.sst", randomBytes 1 (1 <<< 20) ] do
                      let! p = put s key data CreateIfAbsent
                      let! g = s.GetAsync(key, ct)
                      Expect.equal g.Data data $"{key}: data"
                      Expect.equal g.Meta.Key key "meta key"
                      Expect.equal g.Meta.Size (int64 data.Length) "meta size"
                      Expect.equal g.Meta.ETag p.ETag "get etag = put etag"
                      let! h = s.HeadAsync(key, ct)
                      Expect.equal h.Meta g.Meta "head meta = get meta"
              }

          case "overwrite replaces the content and the etag"
          <| fun s ->
              task {
                  let! a = put s "k" (bytesOf "one") Overwrite
                  let! b = put s "k" (bytesOf "two") Overwrite
                  Expect.notEqual b.ETag a.ETag "new etag"
                  let! g = s.GetAsync("k", ct)
                  Expect.equal g.Data (bytesOf "two") "content"
              }

          case "CreateIfAbsent on an existing key fails with AlreadyExists and keeps the content"
          <| fun s ->
              task {
                  let! first = put s "db/wal/1.sst" (bytesOf "first") CreateIfAbsent

                  do!
                      expectKind ObjectStoreErrorKind.AlreadyExists "second create" (fun () ->
                          put s "db/wal/1.sst" (bytesOf "other") CreateIfAbsent)

                  let! g = s.GetAsync("db/wal/1.sst", ct)
                  Expect.equal g.Data (bytesOf "first") "content unchanged"
                  Expect.equal g.Meta.ETag first.ETag "etag unchanged"
              }

          case "IfMatch with the current etag succeeds and changes the etag"
          <| fun s ->
              task {
                  let! a = put s "m" (bytesOf "v1") CreateIfAbsent
                  let! b = put s "m" (bytesOf "v2") (IfMatch a.ETag)
                  Expect.notEqual b.ETag a.ETag "etag changed"
                  let! g = s.GetAsync("m", ct)
                  Expect.equal g.Data (bytesOf "v2") "content"
                  Expect.equal g.Meta.ETag b.ETag "current etag"
              }

          case "IfMatch with a stale etag fails with PreconditionFailed"
          <| fun s ->
              task {
                  let! a = put s "m" (bytesOf "v1") CreateIfAbsent
                  let! _ = put s "m" (bytesOf "v2") (IfMatch a.ETag)

                  do!
                      expectKind ObjectStoreErrorKind.PreconditionFailed "stale etag" (fun () ->
                          put s "m" (bytesOf "v3") (IfMatch a.ETag))

                  do!
                      expectKind ObjectStoreErrorKind.PreconditionFailed "made-up etag" (fun () ->
                          put s "m" (bytesOf "v3") (IfMatch "nonsense"))

                  let! g = s.GetAsync("m", ct)
                  Expect.equal g.Data (bytesOf "v2") "content unchanged"
              }

          case "IfMatch on a missing key fails with PreconditionFailed and creates nothing"
          <| fun s ->
              task {
                  do!
                      expectKind ObjectStoreErrorKind.PreconditionFailed "missing" (fun () ->
                          put s "none/x" (bytesOf "v") (IfMatch "1"))

                  do! expectKind ObjectStoreErrorKind.NotFound "still missing" (fun () -> s.HeadAsync("none/x", ct))
              }

          case "quick successive same-size writes get distinct etags"
          <| fun s ->
              task {
                  let! first = put s "seq" (bytesOf "v00") CreateIfAbsent
                  let seen = HashSet<string>([ first.ETag ])
                  let mutable etag = first.ETag

                  for i in 1..30 do
                      let! r = put s "seq" (bytesOf $"v%02d{i}") (IfMatch etag)
                      Expect.isTrue (seen.Add r.ETag) $"etag {r.ETag} of write {i} is new"
                      etag <- r.ETag

                  // delete and re-create with other bytes of the same size: still a new etag (identical
                  // bytes may legitimately get the same etag, as S3's content MD5 does; a CAS that
                  // cannot tell two identical contents apart loses nothing)
                  do! s.DeleteAsync("seq", ct)
                  let! again = put s "seq" (bytesOf "w00") CreateIfAbsent
                  Expect.isTrue (seen.Add again.ETag) "re-created object has a new etag"
              }

          case "ranged reads: middle, to the end, clamped past the end, beyond the end"
          <| fun s ->
              task {
                  let data = randomBytes 7 1000
                  let! _ = put s "r" data CreateIfAbsent
                  let! mid = s.GetRangeAsync("r", 100L, 250L, ct)
                  Expect.equal mid data.[100..249] "middle"
                  let! toEnd = s.GetRangeAsync("r", 900L, 1000L, ct)
                  Expect.equal toEnd data.[900..] "to the end"
                  let! clamped = s.GetRangeAsync("r", 990L, 5000L, ct)
                  Expect.equal clamped data.[990..] "clamped"
                  let! beyond = s.GetRangeAsync("r", 1000L, 1010L, ct)
                  Expect.isEmpty beyond "start at the end"
                  let! farBeyond = s.GetRangeAsync("r", 5000L, 6000L, ct)
                  Expect.isEmpty farBeyond "start past the end"
                  let! empty = s.GetRangeAsync("r", 10L, 10L, ct)
                  Expect.isEmpty empty "empty range"
                  let! whole = s.GetRangeAsync("r", 0L, Int64.MaxValue, ct)
                  Expect.equal whole data "whole"
                  Expect.throws (fun () -> s.GetRangeAsync("r", -1L, 3L, ct) |> ignore) "negative start"
                  Expect.throws (fun () -> s.GetRangeAsync("r", 5L, 3L, ct) |> ignore) "end before start"
                  do! expectKind ObjectStoreErrorKind.NotFound "missing" (fun () -> s.GetRangeAsync("nope", 0L, 1L, ct))
              }

          case "head reports size, etag and a plausible lastModified"
          <| fun s ->
              task {
                  let before = DateTimeOffset.UtcNow
                  let! p = put s "h/1" (randomBytes 3 333) CreateIfAbsent
                  let after = DateTimeOffset.UtcNow
                  let! h = s.HeadAsync("h/1", ct)
                  Expect.equal h.Meta.Size 333L "size"
                  Expect.equal h.Meta.ETag p.ETag "etag"
                  let slack = TimeSpan.FromSeconds 2.0

                  Expect.isTrue
                      (h.Meta.LastModified >= before - slack && h.Meta.LastModified <= after + slack)
                      $"lastModified {h.Meta.LastModified} in [{before}, {after}]"

                  Expect.isNotNull (box h.Attributes) "attributes never null"
              }

          case "list by prefix is sorted, filtered and uses plain string prefixes"
          <| fun s ->
              task {
                  let keys =
                      [ "db/manifest/00000000000000000002.manifest"
                        "other/1"
                        "db/wal/00000000000000000001.sst"
                        "a/bc/1"
                        "db/manifest/00000000000000000001.manifest"
                        "db/manifestx/1"
                        "a/b/c/d"
                        "a/b/1" ]

                  for i, k in List.indexed keys do
                      let! _ = put s k (randomBytes i (i * 10)) CreateIfAbsent
                      ()

                  let listKeys (p: string) =
                      task {
                          let! l = s.ListAsync(p, ct)
                          return l |> Seq.map (fun m -> m.Key) |> List.ofSeq
                      }

                  let! m = listKeys "db/manifest/"

                  Expect.equal
                      m
                      [ "db/manifest/00000000000000000001.manifest"
                        "db/manifest/00000000000000000002.manifest" ]
                      "manifest dir"

                  let! ab = listKeys "a/b"
                  Expect.equal ab [ "a/b/1"; "a/b/c/d"; "a/bc/1" ] "'a/b' is a string prefix"
                  let! abDir = listKeys "a/b/"
                  Expect.equal abDir [ "a/b/1"; "a/b/c/d" ] "'a/b/' is a directory"
                  let! all = listKeys ""
                  Expect.equal all (List.sortWith (fun a b -> String.CompareOrdinal(a, b)) keys) "everything, sorted"
                  let! none = listKeys "zzz/"
                  Expect.isEmpty none "unknown prefix"
                  let! db = s.ListAsync("db/", ct)

                  for meta in db do
                      let! h = s.HeadAsync(meta.Key, ct)
                      Expect.equal meta h.Meta $"list meta of {meta.Key} = head meta"
              }

          case "delete is idempotent and a deleted key can be created again"
          <| fun s ->
              task {
                  do! s.DeleteAsync("d/x", ct)
                  let! a = put s "d/x" (bytesOf "1") CreateIfAbsent
                  do! s.DeleteAsync("d/x", ct)
                  do! s.DeleteAsync("d/x", ct)
                  do! expectKind ObjectStoreErrorKind.NotFound "deleted" (fun () -> s.GetAsync("d/x", ct))
                  let! l = s.ListAsync("d/", ct)
                  Expect.isEmpty l "not listed"
                  let! b = put s "d/x" (bytesOf "2") CreateIfAbsent
                  Expect.notEqual b.ETag a.ETag "new etag"
              }

          case "reads of missing keys fail with NotFound"
          <| fun s ->
              task {
                  let! _ = put s "present/x" (bytesOf "x") CreateIfAbsent

                  for key in [ "missing"; "present/y"; "no/such/dir/x" ] do
                      do! expectKind ObjectStoreErrorKind.NotFound $"get {key}" (fun () -> s.GetAsync(key, ct))
                      do! expectKind ObjectStoreErrorKind.NotFound $"head {key}" (fun () -> s.HeadAsync(key, ct))
              }

          case "invalid keys are programming errors"
          <| fun s ->
              task {
                  for key in [ ""; "/a"; "a//b"; "a/"; "a/./b"; "a/../b"; ".."; "a\\b"; "a\u0000b" ] do
                      Expect.throwsT<ArgumentException>
                          (fun () -> put s key [| 1uy |] Overwrite |> ignore)
                          $"put '{key}'"

                      Expect.throwsT<ArgumentException> (fun () -> s.GetAsync(key, ct) |> ignore) $"get '{key}'"

                  Expect.throwsT<ArgumentNullException>
                      (fun () -> put s "k" [||] (IfMatch null) |> ignore)
                      "IfMatch null"

                  Expect.throwsT<ArgumentException> (fun () -> s.ListAsync("/a", ct) |> ignore) "list '/a'"
                  Expect.throwsT<ArgumentException> (fun () -> s.ListAsync("a//", ct) |> ignore) "list 'a//'"
              }

          case "stored bytes are isolated from the caller's buffers"
          <| fun s ->
              task {
                  let data = bytesOf "original"
                  let! _ = put s "iso" data CreateIfAbsent
                  data.[0] <- 0uy
                  let! g = s.GetAsync("iso", ct)
                  Expect.equal g.Data (bytesOf "original") "put copies"
                  g.Data.[0] <- 0uy
                  let! g2 = s.GetAsync("iso", ct)
                  Expect.equal g2.Data (bytesOf "original") "get copies"
              }

          case "a cancelled token cancels the call"
          <| fun s ->
              task {
                  let! _ = put s "c" [||] CreateIfAbsent
                  use cts = new CancellationTokenSource()
                  cts.Cancel()

                  let calls: (string * (unit -> Task)) list =
                      [ "get", (fun () -> s.GetAsync("c", cts.Token) :> Task)
                        "head", (fun () -> s.HeadAsync("c", cts.Token) :> Task)
                        "list", (fun () -> s.ListAsync("", cts.Token) :> Task)
                        "put",
                        (fun () -> s.PutAsync("c2", ReadOnlyMemory [||], CreateIfAbsent, null, cts.Token) :> Task)
                        "delete", (fun () -> s.DeleteAsync("c", cts.Token)) ]

                  for what, call in calls do
                      let! cancelled =
                          task {
                              try
                                  do! call ()
                                  return false
                              with :? OperationCanceledException ->
                                  return true
                          }

                      Expect.isTrue cancelled $"{what} cancelled"
              }

          case "racing creators: exactly one of 16 wins and its content is stored"
          <| fun s ->
              task {
                  for k in 1..6 do
                      let key = $"race/{k:D20}.manifest"
                      do! race s key ObjectStoreErrorKind.AlreadyExists (fun c -> put s key c CreateIfAbsent)
              }

          case "racing IfMatch updaters: exactly one of 16 with the same etag wins"
          <| fun s ->
              task {
                  for k in 1..8 do
                      let key = $"cas/{k}"
                      let! b = put s key (bytesOf "base") CreateIfAbsent
                      do! race s key ObjectStoreErrorKind.PreconditionFailed (fun c -> put s key c (IfMatch b.ETag))
              } ]

// ---------------------------------------------------------------------------------------------
// Model-based property: random operation sequences against a Map model.

type private Op =
    | Put of key: int * data: byte[]
    | Create of key: int * data: byte[]
    | IfMatchCurrent of key: int * data: byte[]
    | IfMatchStale of key: int * data: byte[]
    | Delete of key: int
    | Get of key: int
    | Head of key: int
    | Range of key: int * start: int * length: int
    | ListPrefix of prefix: int

/// Keys that never collide as file and directory, so the local store can hold any subset.
let private modelKeys = [| "a/1"; "a/2"; "a/b/1"; "a/bc/1"; "b/1"; "b/c/d/1" |]

let private modelPrefixes = [| ""; "a"; "a/"; "a/b"; "a/b/"; "b/"; "b/c/d/"; "c/" |]

let private opGen: Gen<Op> =
    let key = Gen.choose (0, modelKeys.Length - 1)

    let data =
        gen {
            let! n = Gen.elements [ 0; 1; 5; 16; 40 ]
            return! Gen.arrayOfLength n (Gen.choose (0, 255) |> Gen.map byte)
        }

    Gen.frequency
        [ 2, Gen.map2 (fun k d -> Put(k, d)) key data
          3, Gen.map2 (fun k d -> Create(k, d)) key data
          3, Gen.map2 (fun k d -> IfMatchCurrent(k, d)) key data
          1, Gen.map2 (fun k d -> IfMatchStale(k, d)) key data
          2, Gen.map Delete key
          2, Gen.map Get key
          1, Gen.map Head key
          1, Gen.map3 (fun k s l -> Range(k, s, l)) key (Gen.choose (0, 45)) (Gen.choose (0, 45))
          2, Gen.map ListPrefix (Gen.choose (0, modelPrefixes.Length - 1)) ]

/// Runs `ops` on a fresh store and checks every answer against the model.
let private runModel (makeStore: unit -> IObjectStore) (ops: Op list) : unit =
    let s = makeStore ()

    let await (t: Task<'a>) = t.GetAwaiter().GetResult()

    let kindOf (f: unit -> 'a) : ObjectStoreErrorKind option =
        try
            f () |> ignore
            None
        with :? ObjectStoreException as e ->
            Some e.Kind

    try
        let mutable model: Map<string, byte[] * string> = Map.empty
        let history = Dictionary<string, ResizeArray<string>>()

        let remember key etag =
            match history.TryGetValue key with
            | true, l ->
                Expect.isFalse (l.Contains etag) $"etag {etag} of {key} was never used before"
                l.Add etag
            | _ -> history.[key] <- ResizeArray [ etag ]

        let written key data (r: PutResult) =
            remember key r.ETag
            model <- Map.add key (data, r.ETag) model

        for op in ops do
            match op with
            | Put(k, d) ->
                let key = modelKeys.[k]
                written key d (await (put s key d Overwrite))
            | Create(k, d) ->
                let key = modelKeys.[k]

                if model.ContainsKey key then
                    Expect.equal
                        (kindOf (fun () -> await (put s key d CreateIfAbsent)))
                        (Some ObjectStoreErrorKind.AlreadyExists)
                        "create existing"
                else
                    written key d (await (put s key d CreateIfAbsent))
            | IfMatchCurrent(k, d) ->
                let key = modelKeys.[k]

                match Map.tryFind key model with
                | Some(_, etag) -> written key d (await (put s key d (IfMatch etag)))
                | None ->
                    let etag =
                        match history.TryGetValue key with
                        | true, l -> l.[l.Count - 1]
                        | _ -> "1"

                    Expect.equal
                        (kindOf (fun () -> await (put s key d (IfMatch etag))))
                        (Some ObjectStoreErrorKind.PreconditionFailed)
                        "ifmatch missing"
            | IfMatchStale(k, d) ->
                let key = modelKeys.[k]

                let stale =
                    match history.TryGetValue key, Map.tryFind key model with
                    | (true, l), Some(_, current) when l.Count > 1 -> l |> Seq.find (fun e -> e <> current)
                    | _ -> "stale-etag"

                Expect.equal
                    (kindOf (fun () -> await (put s key d (IfMatch stale))))
                    (Some ObjectStoreErrorKind.PreconditionFailed)
                    "ifmatch stale"
            | Delete k ->
                let key = modelKeys.[k]
                (s.DeleteAsync(key, ct)).GetAwaiter().GetResult()
                model <- Map.remove key model
            | Get k ->
                let key = modelKeys.[k]

                match Map.tryFind key model with
                | Some(d, etag) ->
                    let g = await (s.GetAsync(key, ct))
                    Expect.equal g.Data d $"get {key}"
                    Expect.equal g.Meta.ETag etag $"etag of {key}"
                    Expect.equal g.Meta.Size (int64 d.Length) $"size of {key}"
                | None ->
                    Expect.equal
                        (kindOf (fun () -> await (s.GetAsync(key, ct))))
                        (Some ObjectStoreErrorKind.NotFound)
                        "get missing"
            | Head k ->
                let key = modelKeys.[k]

                match Map.tryFind key model with
                | Some(d, etag) ->
                    let h = await (s.HeadAsync(key, ct))
                    Expect.equal (h.Meta.Size, h.Meta.ETag) (int64 d.Length, etag) $"head {key}"
                | None ->
                    Expect.equal
                        (kindOf (fun () -> await (s.HeadAsync(key, ct))))
                        (Some ObjectStoreErrorKind.NotFound)
                        "head missing"
            | Range(k, start, length) ->
                let key = modelKeys.[k]

                match Map.tryFind key model with
                | Some(d, _) ->
                    let r = await (s.GetRangeAsync(key, int64 start, int64 (start + length), ct))
                    let lo = min start d.Length
                    let hi = min (start + length) d.Length
                    Expect.equal r d.[lo .. hi - 1] $"range {start}+{length} of {key}"
                | None ->
                    Expect.equal
                        (kindOf (fun () -> await (s.GetRangeAsync(key, int64 start, int64 (start + length), ct))))
                        (Some ObjectStoreErrorKind.NotFound)
                        "range missing"
            | ListPrefix p ->
                let prefix = modelPrefixes.[p]

                let listed =
                    await (s.ListAsync(prefix, ct))
                    |> Seq.map (fun m -> m.Key, m.ETag)
                    |> List.ofSeq

                let expected =
                    model
                    |> Map.toList
                    |> List.filter (fun (k, _) -> k.StartsWith(prefix, StringComparison.Ordinal))
                    |> List.map (fun (k, (_, e)) -> k, e)
                    |> List.sortWith (fun (a, _) (b, _) -> String.CompareOrdinal(a, b))

                Expect.equal listed expected $"list '{prefix}'"
    finally
        dispose s

let private modelProperty (n: int) (name: string) (makeStore: unit -> IObjectStore) : Test =
    TestUtil.testPropN n name (Prop.forAll (Arb.fromGen (Gen.listOf opGen)) (runModel makeStore))

// ---------------------------------------------------------------------------------------------
// Backend-specific checks.

let private inMemoryTests =
    testList
        "InMemory specifics"
        [ testCaseTask "attributes round-trip via head and are copied" (fun () ->
              task {
                  let s = InMemoryObjectStore() :> IObjectStore
                  let attrs = Dictionary<string, string>(StringComparer.Ordinal)
                  attrs.["slatedbputid"] <- "01K3XYV1W2WR4FDVB7A9S319YS"
                  let! _ = s.PutAsync("k", ReadOnlyMemory [| 1uy |], CreateIfAbsent, attrs, ct)
                  attrs.["slatedbputid"] <- "changed"
                  let! h = s.HeadAsync("k", ct)
                  Expect.equal h.Attributes.Count 1 "one attribute"
                  Expect.equal h.Attributes.["slatedbputid"] "01K3XYV1W2WR4FDVB7A9S319YS" "value as put"
                  let! _ = s.PutAsync("plain", ReadOnlyMemory [| 1uy |], CreateIfAbsent, null, ct)
                  let! h2 = s.HeadAsync("plain", ct)
                  Expect.equal h2.Attributes.Count 0 "no attributes"
              })

          testCaseTask "lastModified comes from the injected clock" (fun () ->
              task {
                  let t0 = DateTimeOffset(2030, 1, 2, 3, 4, 5, TimeSpan.Zero)
                  let clock = ManualClock t0
                  let s = InMemoryObjectStore(clock) :> IObjectStore
                  let! _ = put s "a" [||] CreateIfAbsent
                  clock.Advance(TimeSpan.FromMinutes 5.0)
                  let! _ = put s "b" [||] CreateIfAbsent
                  let! l = s.ListAsync("", ct)

                  Expect.equal
                      (l |> Seq.map (fun m -> m.LastModified) |> List.ofSeq)
                      [ t0; t0.AddMinutes 5.0 ]
                      "clock times"
              })

          testCaseTask "etags are an increasing counter; Count and Keys reflect the contents" (fun () ->
              task {
                  let store = InMemoryObjectStore()
                  let s = store :> IObjectStore
                  let! a = put s "x/2" [||] CreateIfAbsent
                  let! b = put s "x/1" [||] CreateIfAbsent
                  let! c = put s "x/2" [||] (IfMatch a.ETag)
                  Expect.equal [ a.ETag; b.ETag; c.ETag ] [ "1"; "2"; "3" ] "counter"
                  Expect.equal store.Count 2 "count"
                  Expect.equal (List.ofSeq store.Keys) [ "x/1"; "x/2" ] "sorted keys"
                  Expect.equal s.Describe "memory://" "describe"
              }) ]

let private localTests =
    let case name (body: TempLocalStore -> Task<unit>) =
        testCaseTask name (fun () ->
            task {
                use t = new TempLocalStore()
                do! body t
            })

    let stagingFiles (t: TempLocalStore) =
        let dir = Path.Combine(t.Root, LocalFileObjectStore.StagingDirectoryName)

        if Directory.Exists dir then
            Directory.GetFileSystemEntries dir
            |> Array.map Path.GetFileName
            |> Array.filter (fun n -> n <> LocalFileObjectStore.LockFileName)
        else
            [||]

    testList
        "LocalFile specifics"
        [ case "objects are plain files at <root>/<key> and staging is left empty"
          <| fun t ->
              task {
                  let s = t :> IObjectStore
                  let! a = put s "db/manifest/00000000000000000001.manifest" (bytesOf "m1") CreateIfAbsent

                  do!
                      expectKind ObjectStoreErrorKind.AlreadyExists "dup" (fun () ->
                          put s "db/manifest/00000000000000000001.manifest" (bytesOf "m2") CreateIfAbsent)

                  let! _ = put s "db/manifest/00000000000000000001.manifest" (bytesOf "m3") (IfMatch a.ETag)

                  do!
                      expectKind ObjectStoreErrorKind.PreconditionFailed "stale" (fun () ->
                          put s "db/manifest/00000000000000000001.manifest" (bytesOf "m4") (IfMatch a.ETag))

                  let! _ = put s "db/wal/00000000000000000001.sst" (bytesOf "w") Overwrite
                  do! s.DeleteAsync("db/wal/00000000000000000001.sst", ct)
                  let path = Path.Combine(t.Root, "db", "manifest", "00000000000000000001.manifest")
                  Expect.equal (File.ReadAllBytes path) (bytesOf "m3") "file content"
                  Expect.isEmpty (stagingFiles t) "no staging files left"
                  let! all = s.ListAsync("", ct)

                  Expect.equal
                      (all |> Seq.map (fun m -> m.Key) |> List.ofSeq)
                      [ "db/manifest/00000000000000000001.manifest" ]
                      "staging dir not listed"
              }

          case "files written by another program are listed and readable; temp files are skipped"
          <| fun t ->
              task {
                  let s = t :> IObjectStore
                  let dir = Path.Combine(t.Root, "db", "compacted")
                  Directory.CreateDirectory dir |> ignore
                  File.WriteAllBytes(Path.Combine(dir, "01K3XYV1W2WR4FDVB7A9S319YS.sst"), bytesOf "foreign")
                  File.WriteAllBytes(Path.Combine(dir, "01K3XYV1W2WR4FDVB7A9S319YT.sst#17"), bytesOf "temp")
                  let! l = s.ListAsync("db/", ct)

                  Expect.equal
                      (l |> Seq.map (fun m -> m.Key) |> List.ofSeq)
                      [ "db/compacted/01K3XYV1W2WR4FDVB7A9S319YS.sst" ]
                      "listed"

                  let! g = s.GetAsync("db/compacted/01K3XYV1W2WR4FDVB7A9S319YS.sst", ct)
                  Expect.equal g.Data (bytesOf "foreign") "readable"
                  Expect.equal g.Meta l.[0] "meta"

                  let! r =
                      put s "db/compacted/01K3XYV1W2WR4FDVB7A9S319YS.sst" (bytesOf "replaced") (IfMatch g.Meta.ETag)

                  Expect.notEqual r.ETag g.Meta.ETag "updated"
              }

          case "deeply nested keys work"
          <| fun t ->
              task {
                  let s = t :> IObjectStore
                  let key = "a/b/c/d/e/f/g/h.sst"
                  let! _ = put s key (bytesOf "deep") CreateIfAbsent
                  let! g = s.GetAsync(key, ct)
                  Expect.equal g.Data (bytesOf "deep") "content"
                  let! l = s.ListAsync("a/b/c/", ct)
                  Expect.equal (l |> Seq.map (fun m -> m.Key) |> List.ofSeq) [ key ] "listed"
              }

          case "user attributes are NotSupported; without them the put works"
          <| fun t ->
              task {
                  let s = t :> IObjectStore
                  let attrs = Dictionary<string, string>(dict [ "slatedbputid", "x" ])

                  do!
                      expectKind ObjectStoreErrorKind.NotSupported "attributes" (fun () ->
                          s.PutAsync("k", ReadOnlyMemory [| 1uy |], CreateIfAbsent, attrs, ct))

                  let! _ = s.PutAsync("k", ReadOnlyMemory [| 1uy |], CreateIfAbsent, Dictionary<string, string>(), ct)
                  let! h = s.HeadAsync("k", ct)
                  Expect.equal h.Attributes.Count 0 "no attributes"
              }

          case "keys colliding with directories or files of the tree"
          <| fun t ->
              task {
                  let s = t :> IObjectStore
                  let! _ = put s "a/b" (bytesOf "file") CreateIfAbsent

                  do!
                      expectKind ObjectStoreErrorKind.NotFound "directory read as object" (fun () ->
                          s.GetAsync("a", ct))

                  do! expectKind ObjectStoreErrorKind.NotFound "directory head" (fun () -> s.HeadAsync("a", ct))

                  do!
                      expectKind ObjectStoreErrorKind.NotSupported "create over a directory" (fun () ->
                          put s "a" (bytesOf "x") CreateIfAbsent)

                  do!
                      expectKind ObjectStoreErrorKind.NotSupported "overwrite a directory" (fun () ->
                          put s "a" (bytesOf "x") Overwrite)

                  do!
                      expectKind ObjectStoreErrorKind.NotSupported "below a file" (fun () ->
                          put s "a/b/c" (bytesOf "x") CreateIfAbsent)

                  do! s.DeleteAsync("a", ct)
                  Expect.isTrue (Directory.Exists(Path.Combine(t.Root, "a"))) "directory untouched"
                  Expect.isEmpty (stagingFiles t) "no staging files left"
              }

          case "reserved names are rejected"
          <| fun t ->
              task {
                  let s = t :> IObjectStore

                  Expect.throwsT<ArgumentException>
                      (fun () -> put s ".slate-staging/x" [||] Overwrite |> ignore)
                      "staging"

                  Expect.throwsT<ArgumentException> (fun () -> put s "db/x.sst#12" [||] Overwrite |> ignore) "temp name"
                  Expect.stringStarts s.Describe "file:///" "describe"
              }

          case "two stores on the same root see each other and race fairly"
          <| fun t ->
              task {
                  let other = LocalFileObjectStore(t.Root) :> IObjectStore
                  let s = t :> IObjectStore
                  let! a = put s "shared" (bytesOf "1") CreateIfAbsent
                  let! g = other.GetAsync("shared", ct)
                  Expect.equal g.Meta.ETag a.ETag "same etag"
                  let stores = [| s; other |]

                  let! outcomes =
                      Task.WhenAll(
                          [| for i in 0..15 ->
                                 Task.Run<Result<string, ObjectStoreErrorKind>>(fun () ->
                                     attempt (fun () ->
                                         put stores.[i % 2] "shared" (bytesOf $"{i:D2}") (IfMatch a.ETag))) |]
                      )

                  let wins = outcomes |> Array.filter Result.isOk
                  Expect.hasLength wins 1 "one winner across stores"
              }

          case "conditional updates wait for the OS lock held by another party"
          <| fun t ->
              task {
                  let s = t :> IObjectStore
                  let! a = put s "locked" (bytesOf "1") CreateIfAbsent

                  let lockPath =
                      Path.Combine(t.Root, LocalFileObjectStore.StagingDirectoryName, LocalFileObjectStore.LockFileName)

                  let hold () =
                      File.OpenHandle(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None)

                  let held = hold ()
                  let pending = put s "locked" (bytesOf "2") (IfMatch a.ETag)
                  do! Task.Delay 150
                  Expect.isFalse pending.IsCompleted "the update waits while the lock is held"
                  held.Dispose()
                  let! r = pending
                  Expect.notEqual r.ETag a.ETag "the update went through once the lock was released"
                  let heldAgain = hold ()
                  let deletion = s.DeleteAsync("locked", ct)
                  do! Task.Delay 150
                  Expect.isFalse deletion.IsCompleted "the delete waits while the lock is held"
                  heldAgain.Dispose()
                  do! deletion
                  do! expectKind ObjectStoreErrorKind.NotFound "deleted" (fun () -> s.GetAsync("locked", ct))
              }

          case "mtime stamps come from the injected clock and stay strictly increasing"
          <| fun _ ->
              task {
                  let t0 = DateTimeOffset(2031, 5, 6, 7, 8, 9, TimeSpan.Zero)
                  use t = new TempLocalStore(ManualClock t0)
                  let s = t :> IObjectStore
                  let! a = put s "x" (bytesOf "aa") CreateIfAbsent
                  let! b = put s "x" (bytesOf "bb") (IfMatch a.ETag)
                  let! c = put s "y" (bytesOf "cc") CreateIfAbsent
                  let! l = s.ListAsync("", ct)
                  let times = l |> Seq.map (fun m -> m.LastModified) |> List.ofSeq
                  Expect.notEqual a.ETag b.ETag "distinct etags under a frozen clock"
                  Expect.equal (l |> Seq.map (fun m -> m.ETag) |> List.ofSeq) [ b.ETag; c.ETag ] "listed etags"

                  for time in times do
                      Expect.isTrue (time >= t0 && time < t0.AddSeconds 2.0) $"time {time} near the clock"

                  Expect.isTrue (times.[1] > times.[0]) "later write has a later stamp"
              } ]

let allTests =
    testList
        "ObjectStore"
        [ conformance "InMemory conformance" (fun () -> InMemoryObjectStore() :> IObjectStore)
          conformance "LocalFile conformance" (fun () -> new TempLocalStore() :> IObjectStore)
          modelProperty 200 "InMemory matches the Map model" (fun () -> InMemoryObjectStore() :> IObjectStore)
          modelProperty 40 "LocalFile matches the Map model" (fun () -> new TempLocalStore() :> IObjectStore)
          inMemoryTests
          localTests ]
