/// Tests of the object-store decorators: retries and the ambiguous-put check (SPEC §2.4),
/// metering, latency sampling and the fault injector; plus the conformance suite through them.
module Slate.Properties.DecoratorTests

open System
open System.Collections.Concurrent
open System.Collections.Generic
open System.IO
open System.Threading
open System.Threading.Tasks
open Expecto
open FsCheck
open FsCheck.FSharp
open Slate.Engine
open Slate.Model

let private ct = CancellationToken.None

let private bytesOf (s: string) : byte[] = Text.Encoding.UTF8.GetBytes s

let private put (s: IObjectStore) (key: string) (data: byte[]) (mode: PutMode) : Task<PutResult> =
    s.PutAsync(key, ReadOnlyMemory data, mode, null, ct)

/// Awaits `f` and returns the `ObjectStoreException` it fails with (failing the test on success).
let private failure (what: string) (f: unit -> Task<'a>) : Task<ObjectStoreException> =
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
        | None -> return failtestf "%s: expected a store failure but the call succeeded" what
        | Some e -> return e
    }

let private expectKind (kind: ObjectStoreErrorKind) (what: string) (f: unit -> Task<'a>) : Task<unit> =
    task {
        let! e = failure what f
        Expect.equal e.Kind kind $"{what}: error kind ({e.Message})"
    }

/// Retries without waiting.
let private noWait: RetryOptions =
    { MaxRetries = None
      InitialDelay = TimeSpan.Zero
      MaxDelay = TimeSpan.Zero }

let private retrying (inner: IObjectStore) (options: RetryOptions) : RetryingObjectStore =
    RetryingObjectStore(inner, options, TimeProvider.System, Random(42))

/// In-memory store behind a fault injector behind a retrying store (no back-off waits).
let private faultyStack () =
    let memory = InMemoryObjectStore()
    let faults = FaultInjectingObjectStore(memory)
    memory, faults, retrying faults noWait :> IObjectStore

let private schedule (f: FaultRequest -> FaultAction) = Func<FaultRequest, FaultAction> f

let private hook (f: InjectedFault -> Task) = Func<InjectedFault, Task> f

/// A clock whose timers record their due time and fire at once (on the thread pool).
type private RecordingClock() =
    inherit TimeProvider()
    let due = ConcurrentQueue<TimeSpan>()
    member _.Delays: TimeSpan list = List.ofSeq due

    override _.CreateTimer(callback: TimerCallback, state: obj, dueTime: TimeSpan, _period: TimeSpan) : ITimer =
        due.Enqueue dueTime
        ThreadPool.QueueUserWorkItem(fun _ -> callback.Invoke state) |> ignore

        { new ITimer with
            member _.Change(_: TimeSpan, _: TimeSpan) = true
            member _.Dispose() = ()
            member _.DisposeAsync() = ValueTask.CompletedTask }

let private scripted<'T> (kind: ObjectStoreErrorKind) (key: string) : Task<'T> =
    Task.FromException<'T>(ObjectStoreException(kind, key, $"scripted {kind}"))

/// A store whose every request fails with `kind` (for "never retried" checks).
type private FailingStore(kind: ObjectStoreErrorKind) =
    interface IObjectStore with
        member _.PutAsync(key, _, _, _, _) = scripted kind key
        member _.GetAsync(key, _) = scripted kind key
        member _.GetRangeAsync(key, _, _, _) = scripted kind key
        member _.HeadAsync(key, _) = scripted kind key
        member _.ListAsync(prefix, _) = scripted kind prefix
        member _.DeleteAsync(key, _) = scripted<unit> kind key :> Task
        member _.Describe = "failing://"

/// A fresh temporary directory, deleted on disposal.
type private TempDir() =
    let dir =
        Path.Combine(Path.GetTempPath(), "slate-decorators-" + Guid.NewGuid().ToString("N"))

    member _.Path: string = dir

    interface IDisposable with
        member _.Dispose() =
            if Directory.Exists dir then
                Directory.Delete(dir, true)

/// A decorated store plus the disposable that cleans up behind it (for the conformance suite).
type private Owned(store: IObjectStore, owner: IDisposable) =
    interface IObjectStore with
        member _.PutAsync(k, d, m, a, c) = store.PutAsync(k, d, m, a, c)
        member _.GetAsync(k, c) = store.GetAsync(k, c)
        member _.GetRangeAsync(k, s, e, c) = store.GetRangeAsync(k, s, e, c)
        member _.HeadAsync(k, c) = store.HeadAsync(k, c)
        member _.ListAsync(p, c) = store.ListAsync(p, c)
        member _.DeleteAsync(k, c) = store.DeleteAsync(k, c)
        member _.Describe = store.Describe

    interface IDisposable with
        member _.Dispose() = owner.Dispose()

let private run (t: Task<'a>) : 'a = t.GetAwaiter().GetResult()

// ---------------------------------------------------------------------------------------------
// Retrying store

let private randomFaultTests =
    testList
        "under random faults"
        [ TestUtil.testPropN 25 "distinct CreateIfAbsent puts each succeed once with our content"
          <| fun (seed: int) ->
              let memory, faults, s = faultyStack ()
              faults.FailRandomly(0.35, 0.5, seed)
              let keys = [ for i in 1..40 -> $"db/wal/{i:D5}.sst" ]

              for key in keys do
                  let r = run (put s key (bytesOf $"ours {key}") CreateIfAbsent)
                  let g = run ((memory :> IObjectStore).GetAsync(key, ct))
                  Expect.equal g.Data (bytesOf $"ours {key}") "our content"
                  Expect.equal r.ETag g.Meta.ETag "returned etag is the stored version's"

              Expect.equal memory.Count keys.Length "one object per key"
              Expect.isGreaterThan faults.FaultCount 0L "faults were injected"

          TestUtil.testPropN 25 "a chain of IfMatch updates succeeds through lost responses"
          <| fun (seed: int) ->
              let memory, faults, s = faultyStack ()
              let first = run (put s "db/manifest" (bytesOf "v0") CreateIfAbsent)
              faults.FailRandomly(0.4, 0.6, seed)
              let mutable etag = first.ETag

              for i in 1..25 do
                  let r = run (put s "db/manifest" (bytesOf $"v{i}") (IfMatch etag))
                  Expect.notEqual r.ETag etag "a new version"
                  etag <- r.ETag

              let g = run ((memory :> IObjectStore).GetAsync("db/manifest", ct))
              Expect.equal g.Data (bytesOf "v25") "last content"
              Expect.equal g.Meta.ETag etag "last etag" ]

let private ambiguityTests =
    let other = bytesOf "someone else"

    testList
        "ambiguous puts"
        [ testCaseTask "a lost CreateIfAbsent response is reported as success (put id proves it)" (fun () ->
              task {
                  let memory, faults, s = faultyStack ()

                  faults.SetSchedule(
                      schedule (fun r ->
                          if r.Number = 1L then
                              FaultAction.FailAfterEffect
                          else
                              FaultAction.Pass)
                  )

                  let! r = put s "x" (bytesOf "mine") CreateIfAbsent
                  let! g = (memory :> IObjectStore).GetAsync("x", ct)
                  Expect.equal g.Data (bytesOf "mine") "content"
                  Expect.equal r.ETag g.Meta.ETag "etag of the stored version"
                  Expect.equal faults.RequestCount 3L "put (lost), put (AlreadyExists), head"
              })

          testCaseTask "an object created by another writer after our unapplied attempt stays AlreadyExists" (fun () ->
              task {
                  let memory, faults, s = faultyStack ()

                  faults.SetSchedule(
                      schedule (fun r ->
                          if r.Number = 1L then
                              FaultAction.FailBeforeEffect
                          else
                              FaultAction.Pass)
                  )

                  faults.OnFault <- hook (fun _ -> put memory "x" other CreateIfAbsent :> Task)

                  do!
                      expectKind ObjectStoreErrorKind.AlreadyExists "create" (fun () ->
                          put s "x" (bytesOf "mine") CreateIfAbsent)

                  let! g = (memory :> IObjectStore).GetAsync("x", ct)
                  Expect.equal g.Data other "the other writer's content"
              })

          testCaseTask "our lost create replaced by another writer before the retry stays AlreadyExists" (fun () ->
              task {
                  let memory, faults, s = faultyStack ()

                  faults.SetSchedule(
                      schedule (fun r ->
                          if r.Number = 1L then
                              FaultAction.FailAfterEffect
                          else
                              FaultAction.Pass)
                  )

                  faults.OnFault <- hook (fun _ -> put memory "x" other Overwrite :> Task)

                  do!
                      expectKind ObjectStoreErrorKind.AlreadyExists "create" (fun () ->
                          put s "x" (bytesOf "mine") CreateIfAbsent)
              })

          testCaseTask "a lost IfMatch response is reported as success" (fun () ->
              task {
                  let memory, faults, s = faultyStack ()
                  let! v1 = put s "m" (bytesOf "v1") CreateIfAbsent

                  faults.SetSchedule(
                      schedule (fun r ->
                          if r.Number = 2L then
                              FaultAction.FailAfterEffect
                          else
                              FaultAction.Pass)
                  )

                  let! v2 = put s "m" (bytesOf "v2") (IfMatch v1.ETag)
                  let! g = (memory :> IObjectStore).GetAsync("m", ct)
                  Expect.equal g.Data (bytesOf "v2") "content"
                  Expect.equal v2.ETag g.Meta.ETag "etag"
              })

          testCaseTask "an IfMatch beaten by another writer during the ambiguity stays PreconditionFailed" (fun () ->
              task {
                  let memory, faults, s = faultyStack ()
                  let! v1 = put s "m" (bytesOf "v1") CreateIfAbsent

                  faults.SetSchedule(
                      schedule (fun r ->
                          if r.Number = 2L then
                              FaultAction.FailBeforeEffect
                          else
                              FaultAction.Pass)
                  )

                  faults.OnFault <- hook (fun _ -> put memory "m" other (IfMatch v1.ETag) :> Task)

                  do!
                      expectKind ObjectStoreErrorKind.PreconditionFailed "update" (fun () ->
                          put s "m" (bytesOf "v2") (IfMatch v1.ETag))

                  let! g = (memory :> IObjectStore).GetAsync("m", ct)
                  Expect.equal g.Data other "the other writer's content"
              })

          testCaseTask "an object deleted during the ambiguity reports the original error" (fun () ->
              task {
                  let memory, faults, s = faultyStack ()
                  let! v1 = put s "m" (bytesOf "v1") CreateIfAbsent

                  faults.SetSchedule(
                      schedule (fun r ->
                          if r.Number = 2L then
                              FaultAction.FailAfterEffect
                          else
                              FaultAction.Pass)
                  )

                  faults.OnFault <- hook (fun _ -> (memory :> IObjectStore).DeleteAsync("m", ct))

                  do!
                      expectKind ObjectStoreErrorKind.PreconditionFailed "update" (fun () ->
                          put s "m" (bytesOf "v2") (IfMatch v1.ETag))
              })

          testCaseTask "without an earlier transient failure AlreadyExists is final and no head is made" (fun () ->
              task {
                  let metered = MeteredObjectStore(InMemoryObjectStore())
                  let s = retrying metered noWait :> IObjectStore
                  let! _ = put s "x" (bytesOf "a") CreateIfAbsent

                  do!
                      expectKind ObjectStoreErrorKind.AlreadyExists "second" (fun () ->
                          put s "x" (bytesOf "b") CreateIfAbsent)

                  let m = metered.Snapshot()
                  Expect.equal (m.Puts, m.Heads) (2L, 0L) "two puts, no head"
              })

          testCaseTask "conditional puts carry a fresh ULID put id merged with the caller's attributes" (fun () ->
              task {
                  let memory = InMemoryObjectStore()
                  let s = retrying memory noWait :> IObjectStore
                  let attrs = Dictionary<string, string>(StringComparer.Ordinal)
                  attrs.["owner"] <- "test"
                  let! _ = s.PutAsync("a", ReadOnlyMemory [| 1uy |], CreateIfAbsent, attrs, ct)
                  let! _ = put s "b" [| 2uy |] CreateIfAbsent
                  let! _ = put s "c" [| 3uy |] Overwrite
                  let! ha = (memory :> IObjectStore).HeadAsync("a", ct)
                  let! hb = (memory :> IObjectStore).HeadAsync("b", ct)
                  let! hc = (memory :> IObjectStore).HeadAsync("c", ct)
                  let ida = ha.Attributes.[RetryingObjectStore.PutIdAttribute]
                  let idb = hb.Attributes.[RetryingObjectStore.PutIdAttribute]
                  Expect.equal ha.Attributes.["owner"] "test" "caller attribute kept"
                  Expect.isSome (Ulid.tryParse ida) $"'{ida}' is a ULID"
                  Expect.isSome (Ulid.tryParse idb) $"'{idb}' is a ULID"
                  Expect.notEqual ida idb "fresh per put"
                  Expect.equal hc.Attributes.Count 0 "Overwrite carries no put id"
              }) ]

let private policyTests =
    let notRetried =
        [ ObjectStoreErrorKind.AlreadyExists
          ObjectStoreErrorKind.PreconditionFailed
          ObjectStoreErrorKind.NotFound
          ObjectStoreErrorKind.NotModified
          ObjectStoreErrorKind.NotSupported ]

    testList
        "retry policy"
        [ testCaseTask "non-transient failures are never retried" (fun () ->
              task {
                  for kind in notRetried do
                      let metered = MeteredObjectStore(FailingStore kind)
                      let s = retrying metered noWait :> IObjectStore
                      do! expectKind kind "get" (fun () -> s.GetAsync("k", ct))
                      do! expectKind kind "range" (fun () -> s.GetRangeAsync("k", 0L, 1L, ct))
                      do! expectKind kind "head" (fun () -> s.HeadAsync("k", ct))
                      do! expectKind kind "list" (fun () -> s.ListAsync("", ct))
                      do! expectKind kind "delete" (fun () -> task { do! s.DeleteAsync("k", ct) })
                      do! expectKind kind "put" (fun () -> put s "k" [||] Overwrite)
                      let m = metered.Snapshot()
                      Expect.equal m.Requests 6L $"{kind}: one request each"
              })

          testCaseTask "a NotSupported that is not about attributes surfaces after one attribute-less retry" (fun () ->
              task {
                  let metered = MeteredObjectStore(FailingStore ObjectStoreErrorKind.NotSupported)
                  let s = retrying metered noWait
                  do! expectKind ObjectStoreErrorKind.NotSupported "create" (fun () -> put s "k" [||] CreateIfAbsent)
                  Expect.equal (metered.Snapshot().Puts) 2L "with, then without attributes"
                  Expect.isTrue s.AttributesSupported "not concluded that attributes are unsupported"
              })

          testCaseTask "MaxRetries bounds the attempts and the last Transient surfaces" (fun () ->
              task {
                  for n in [ 0; 1; 3 ] do
                      let faults = FaultInjectingObjectStore(InMemoryObjectStore())
                      faults.FailRandomly(1.0, 0.0, 1)
                      let s = retrying faults { noWait with MaxRetries = Some n } :> IObjectStore
                      let! e = failure "get" (fun () -> s.GetAsync("k", ct))
                      Expect.equal e.Kind ObjectStoreErrorKind.Transient "kind"
                      Expect.stringContains e.Message $"#{n + 1}" "the last attempt's error"
                      Expect.equal faults.RequestCount (int64 (n + 1)) $"MaxRetries {n}: attempts"
              })

          testCaseTask "transient failures are retried until they stop" (fun () ->
              task {
                  let memory, faults, s = faultyStack ()
                  let! _ = put memory "k" (bytesOf "v") CreateIfAbsent

                  faults.SetSchedule(
                      schedule (fun r ->
                          if r.Number <= 5L then
                              FaultAction.FailBeforeEffect
                          else
                              FaultAction.Pass)
                  )

                  let! g = s.GetAsync("k", ct)
                  Expect.equal g.Data (bytesOf "v") "read"
                  Expect.equal faults.RequestCount 6L "five failures and a success"
              })

          testCaseTask "cancellation stops unbounded retries" (fun () ->
              task {
                  let faults = FaultInjectingObjectStore(InMemoryObjectStore())
                  faults.FailRandomly(1.0, 0.0, 1)

                  let options =
                      { MaxRetries = None
                        InitialDelay = TimeSpan.FromMilliseconds 2.0
                        MaxDelay = TimeSpan.FromMilliseconds 5.0 }

                  let s = retrying faults options :> IObjectStore
                  use cts = new CancellationTokenSource(TimeSpan.FromMilliseconds 60.0)

                  let! cancelled =
                      task {
                          try
                              let! _ = s.GetAsync("k", cts.Token)
                              return false
                          with :? OperationCanceledException ->
                              return true
                      }

                  Expect.isTrue cancelled "cancelled"
                  let seen = faults.RequestCount
                  Expect.isGreaterThan seen 1L "retried before the cancellation"
                  do! Task.Delay 30
                  Expect.equal faults.RequestCount seen "no attempt after the cancellation"
              })

          testCaseTask "back-off waits follow RetryOptions.backoff on the injected clock" (fun () ->
              task {
                  let clock = RecordingClock()
                  let faults = FaultInjectingObjectStore(InMemoryObjectStore())
                  faults.FailRandomly(1.0, 0.0, 1)

                  let options =
                      { RetryOptions.defaults with
                          MaxRetries = Some 6 }

                  let s = RetryingObjectStore(faults, options, clock, Random 7) :> IObjectStore
                  do! expectKind ObjectStoreErrorKind.Transient "get" (fun () -> s.GetAsync("k", ct))
                  let draws = Random 7

                  let expected =
                      [ for k in 0..5 ->
                            let d = RetryOptions.backoff options k (draws.NextDouble())
                            TimeSpan.FromMilliseconds(floor d.TotalMilliseconds) ]

                  Expect.equal clock.Delays expected "six waits, whole milliseconds"

                  for d, lo, hi in
                      List.zip3 clock.Delays [ 50; 100; 200; 400; 500; 500 ] [ 100; 200; 400; 800; 1000; 1000 ] do
                      Expect.isTrue
                          (d.TotalMilliseconds >= float lo && d.TotalMilliseconds <= float hi)
                          $"{d} within [{lo}, {hi}] ms"
              })

          TestUtil.testProp "backoff lies in [b/2, b] for b = min(max, initial * 2^k) and grows with k and u"
          <| fun (initialMs: byte) (extra: byte) (retry: byte) (a: float) (b: float) ->
              let clamp x =
                  if Double.IsNaN x || Double.IsInfinity x then
                      0.5
                  else
                      abs x % 1.0

              let o =
                  { MaxRetries = None
                    InitialDelay = TimeSpan.FromMilliseconds(float initialMs)
                    MaxDelay = TimeSpan.FromMilliseconds(float initialMs + float extra) }

              let u1, u2 = min (clamp a) (clamp b), max (clamp a) (clamp b)
              let k = int retry % 40
              let d = RetryOptions.backoff o k u1

              let cap =
                  min o.MaxDelay.TotalMilliseconds (o.InitialDelay.TotalMilliseconds * 2.0 ** float k)

              Expect.isTrue (d.TotalMilliseconds >= cap / 2.0 - 0.001) "at least b/2"
              Expect.isTrue (d <= o.MaxDelay && d.TotalMilliseconds <= cap + 0.001) "at most b and MaxDelay"
              Expect.isTrue (d <= RetryOptions.backoff o k u2) "monotone in u"
              Expect.isTrue (d <= RetryOptions.backoff o (k + 1) u1) "monotone in the retry number"

          testCase "invalid options are rejected"
          <| fun () ->
              let inner = InMemoryObjectStore()

              for o in
                  [ { noWait with MaxRetries = Some -1 }
                    { noWait with
                        InitialDelay = TimeSpan.FromMilliseconds -1.0 }
                    { noWait with
                        InitialDelay = TimeSpan.FromSeconds 2.0
                        MaxDelay = TimeSpan.FromSeconds 1.0 } ] do
                  Expect.throwsT<ArgumentException> (fun () -> retrying inner o |> ignore) $"{o}" ]

let private attributeFallbackTests =
    testList
        "without attribute support (local file system)"
        [ testCaseTask "conditional puts still work and attributes are not sent again" (fun () ->
              task {
                  use dir = new TempDir()
                  let metered = MeteredObjectStore(LocalFileObjectStore(dir.Path))
                  let r = retrying metered noWait
                  let s = r :> IObjectStore
                  let! a = put s "db/a" (bytesOf "a1") CreateIfAbsent
                  Expect.equal (metered.Snapshot().Puts) 2L "with attributes (NotSupported), then without"
                  Expect.isFalse r.AttributesSupported "remembered"
                  let! _ = put s "db/b" (bytesOf "b") CreateIfAbsent
                  let! a2 = put s "db/a" (bytesOf "a2") (IfMatch a.ETag)
                  Expect.equal (metered.Snapshot().Puts) 4L "one request per later put"
                  Expect.equal (metered.Snapshot().Errors.NotSupported) 1L "one NotSupported overall"

                  do!
                      expectKind ObjectStoreErrorKind.AlreadyExists "re-create" (fun () ->
                          put s "db/b" [||] CreateIfAbsent)

                  do!
                      expectKind ObjectStoreErrorKind.PreconditionFailed "stale" (fun () ->
                          put s "db/a" [||] (IfMatch a.ETag))

                  let! g = s.GetAsync("db/a", ct)
                  Expect.equal (g.Data, g.Meta.ETag) (bytesOf "a2", a2.ETag) "updated"
              })

          testCaseTask "a lost-response create has no proof and is reported as AlreadyExists" (fun () ->
              task {
                  use dir = new TempDir()
                  let local = LocalFileObjectStore(dir.Path) :> IObjectStore
                  let faults = FaultInjectingObjectStore(local)
                  let s = retrying faults noWait :> IObjectStore
                  let! _ = put s "db/first" [||] CreateIfAbsent // learns: no attributes
                  let next = faults.RequestCount + 1L

                  faults.SetSchedule(
                      schedule (fun r ->
                          if r.Number = next then
                              FaultAction.FailAfterEffect
                          else
                              FaultAction.Pass)
                  )

                  do!
                      expectKind ObjectStoreErrorKind.AlreadyExists "create" (fun () ->
                          put s "db/x" (bytesOf "mine") CreateIfAbsent)

                  let! g = local.GetAsync("db/x", ct)
                  Expect.equal g.Data (bytesOf "mine") "it was applied, but without proof it is not claimed"
              }) ]

// ---------------------------------------------------------------------------------------------
// Metered store

let private meteredTests =
    testList
        "metered store"
        [ testCaseTask "counts requests, bytes and errors exactly" (fun () ->
              task {
                  let m = MeteredObjectStore(InMemoryObjectStore())
                  let s = m :> IObjectStore
                  let! a = put s "a" (Array.zeroCreate 10) CreateIfAbsent
                  let! _ = put s "b" (Array.zeroCreate 5) Overwrite

                  do!
                      expectKind ObjectStoreErrorKind.AlreadyExists "dup" (fun () ->
                          put s "a" (Array.zeroCreate 3) CreateIfAbsent)

                  do!
                      expectKind ObjectStoreErrorKind.PreconditionFailed "stale" (fun () ->
                          put s "b" [| 1uy |] (IfMatch a.ETag))

                  let! _ = s.GetAsync("a", ct)
                  do! expectKind ObjectStoreErrorKind.NotFound "missing" (fun () -> s.GetAsync("zz", ct))
                  let! _ = s.GetRangeAsync("a", 2L, 6L, ct)
                  let! _ = s.GetRangeAsync("b", 3L, 100L, ct)
                  let! _ = s.HeadAsync("a", ct)
                  let! _ = s.ListAsync("", ct)
                  let! _ = s.ListAsync("a", ct)
                  do! s.DeleteAsync("b", ct)
                  let snap = m.Snapshot()

                  let expected =
                      { StoreMetrics.zero with
                          Puts = 4L
                          Gets = 2L
                          GetRanges = 2L
                          Heads = 1L
                          Lists = 2L
                          Deletes = 1L
                          BytesWritten = 19L
                          BytesRead = 16L
                          Errors =
                              { StoreMetrics.zero.Errors with
                                  AlreadyExists = 1L
                                  PreconditionFailed = 1L
                                  NotFound = 1L } }

                  Expect.equal snap expected "snapshot"
                  Expect.equal snap.Requests 12L "requests"
                  Expect.equal snap.Errors.Total 3L "errors"
                  Expect.equal (StoreMetrics.requests ObjectStoreVerb.GetRange snap) 2L "by verb"
                  let! _ = s.HeadAsync("a", ct)
                  let later = m.Snapshot()
                  Expect.equal (StoreMetrics.diff later snap) { StoreMetrics.zero with Heads = 1L } "diff"
                  m.Reset()
                  Expect.equal (m.Snapshot()) StoreMetrics.zero "reset"
              })

          testCaseTask "transient errors under a retrying store are counted per attempt" (fun () ->
              task {
                  let memory = InMemoryObjectStore()
                  let faults = FaultInjectingObjectStore(memory)
                  let m = MeteredObjectStore(faults)
                  let s = retrying m noWait :> IObjectStore

                  faults.SetSchedule(
                      schedule (fun r ->
                          if r.Number <= 3L then
                              FaultAction.FailBeforeEffect
                          else
                              FaultAction.Pass)
                  )

                  let! _ = put s "k" (Array.zeroCreate 7) Overwrite
                  let snap = m.Snapshot()
                  Expect.equal (snap.Puts, snap.BytesWritten, snap.Errors.Transient) (4L, 28L, 3L) "4 attempts"
              })

          testCase "counting is thread-safe"
          <| fun () ->
              let m = MeteredObjectStore(InMemoryObjectStore())
              let s = m :> IObjectStore
              run (put s "k" (Array.zeroCreate 3) Overwrite) |> ignore

              Parallel.For(
                  0,
                  8,
                  fun _ ->
                      for _ in 1..2000 do
                          run (s.GetAsync("k", ct)) |> ignore
              )
              |> ignore

              let snap = m.Snapshot()
              Expect.equal (snap.Gets, snap.BytesRead) (16000L, 48000L) "every get counted" ]

// ---------------------------------------------------------------------------------------------
// Latency

let private unitGen: Gen<float> =
    Gen.choose (0, 1_000_000) |> Gen.map (fun i -> float i / 1_000_000.0)

let private verbGen: Gen<ObjectStoreVerb> =
    Gen.elements
        [ ObjectStoreVerb.Put
          ObjectStoreVerb.Get
          ObjectStoreVerb.GetRange
          ObjectStoreVerb.Head
          ObjectStoreVerb.List
          ObjectStoreVerb.Delete ]

let private profiles =
    [ LatencyProfile.local; LatencyProfile.s3Standard; LatencyProfile.s3Express ]

let private sampleCase =
    Gen.zip3 (Gen.elements profiles) verbGen (Gen.zip3 unitGen unitGen (Gen.choose (0, 50_000_000)))

let private ms (d: TimeSpan) = d.TotalMilliseconds

let private latencyTests =
    let forCase (f: LatencyProfile -> ObjectStoreVerb -> float -> float -> int64 -> unit) =
        Prop.forAll (Arb.fromGen sampleCase) (fun (p, v, (a, b, n)) -> f p v (min a b) (max a b) (int64 n))

    testList
        "latency profiles"
        [ TestUtil.testPropN 300 "sample is monotone in u and in bytes"
          <| forCase (fun p v u1 u2 n ->
              Expect.isTrue (LatencyProfile.sample p v u1 n <= LatencyProfile.sample p v u2 n) "u"
              Expect.isTrue (LatencyProfile.sample p v u1 0L <= LatencyProfile.sample p v u1 n) "bytes")

          TestUtil.testPropN 300 "sample respects the minimum and the 2 x p99 tail bound"
          <| forCase (fun p v u _ _ ->
              let t = LatencyProfile.tableFor p v
              let d = ms (LatencyProfile.sample p v u 0L)
              Expect.isTrue (d >= t.[0].Milliseconds - 1e-4) $"{d} >= min"
              Expect.isTrue (d <= 2.0 * t.[3].Milliseconds + 1e-4) $"{d} <= 2 x p99")

          TestUtil.testPropN 300 "the payload adds size / bandwidth"
          <| forCase (fun p v u _ n ->
              let extra = ms (LatencyProfile.sample p v u n) - ms (LatencyProfile.sample p v u 0L)

              let expected =
                  if Double.IsPositiveInfinity p.BytesPerSecond then
                      0.0
                  else
                      1000.0 * float n / p.BytesPerSecond

              Expect.isLessThanOrEqual
                  (abs (extra - expected))
                  2e-4
                  $"transfer time {extra} ms ~ {expected} ms (two ticks of rounding)")

          testCase "the listed quantiles are hit exactly"
          <| fun () ->
              let at p v u = ms (LatencyProfile.sample p v u 0L)

              let s3 = LatencyProfile.s3Standard
              let ex = LatencyProfile.s3Express

              Expect.equal
                  [ at s3 ObjectStoreVerb.Put 0.0
                    at s3 ObjectStoreVerb.Put 0.5
                    at s3 ObjectStoreVerb.Put 0.9
                    at s3 ObjectStoreVerb.Put 0.99
                    at s3 ObjectStoreVerb.Put 1.0 ]
                  [ 20.0; 28.0; 37.0; 74.0; 148.0 ]
                  "s3-standard PUT"

              Expect.equal
                  [ at s3 ObjectStoreVerb.Get 0.0
                    at s3 ObjectStoreVerb.Get 0.5
                    at s3 ObjectStoreVerb.Head 0.9
                    at s3 ObjectStoreVerb.GetRange 0.99 ]
                  [ 19.0; 25.0; 40.0; 88.0 ]
                  "s3-standard GET"

              Expect.equal
                  [ at ex ObjectStoreVerb.Put 0.5
                    at ex ObjectStoreVerb.Delete 0.9
                    at ex ObjectStoreVerb.List 0.99 ]
                  [ 5.0; 7.0; 10.0 ]
                  "s3-express PUT"

              Expect.equal
                  [ at ex ObjectStoreVerb.Get 0.5
                    at ex ObjectStoreVerb.Get 0.9
                    at ex ObjectStoreVerb.Get 0.99 ]
                  [ 3.0; 5.0; 8.0 ]
                  "s3-express GET"

              Expect.floatClose Accuracy.high (at s3 ObjectStoreVerb.Put 0.7) 32.5 "interpolated between p50 and p90"

              Expect.floatClose
                  Accuracy.high
                  (ms (LatencyProfile.sample s3 ObjectStoreVerb.Put 0.5 37_000_000L))
                  1028.0
                  "37 MB at 37 MB/s"

              Expect.equal
                  (LatencyProfile.sample LatencyProfile.local ObjectStoreVerb.Put 0.999 1_000_000_000L)
                  TimeSpan.Zero
                  "local"

              Expect.throwsT<ArgumentException>
                  (fun () -> LatencyProfile.sample s3 ObjectStoreVerb.Put 1.5 0L |> ignore)
                  "u > 1"

          testCaseTask "the latency store waits the sampled delay on the injected clock" (fun () ->
              task {
                  let clock = RecordingClock()
                  let p = LatencyProfile.s3Standard

                  let s =
                      LatencyObjectStore(InMemoryObjectStore(), p, Random 3, clock) :> IObjectStore

                  let data = Array.zeroCreate<byte> 3_700_000
                  let! _ = put s "k" data CreateIfAbsent
                  let! _ = s.GetAsync("k", ct)
                  let! _ = s.GetRangeAsync("k", 0L, 37_000L, ct)
                  let! _ = s.HeadAsync("k", ct)
                  let draws = Random 3

                  let expected =
                      [ ObjectStoreVerb.Put, 3_700_000L
                        ObjectStoreVerb.Get, 3_700_000L
                        ObjectStoreVerb.GetRange, 37_000L
                        ObjectStoreVerb.Head, 0L ]
                      |> List.map (fun (v, n) ->
                          let d = LatencyProfile.sample p v (draws.NextDouble()) n
                          TimeSpan.FromMilliseconds(Math.Round d.TotalMilliseconds))

                  Expect.equal clock.Delays expected "one wait per request"
              }) ]

// ---------------------------------------------------------------------------------------------
// Fault injector

let private faultTests =
    let crashed (f: unit -> Task<'a>) : Task<StoreCrashedException> =
        task {
            try
                let! _ = f ()
                return failtest "expected StoreCrashedException"
            with :? StoreCrashedException as e ->
                return e
        }

    testList
        "fault injector"
        [ testCaseTask "crash at request N before its effect: nothing applied, dead afterwards" (fun () ->
              task {
                  let memory = InMemoryObjectStore()
                  let f = FaultInjectingObjectStore(memory)
                  let s = f :> IObjectStore
                  f.CrashAt(3L, true)
                  let! _ = put s "a" [||] CreateIfAbsent
                  let! _ = s.GetAsync("a", ct)
                  let! e = crashed (fun () -> put s "b" [||] CreateIfAbsent)
                  Expect.equal (e.CrashedAt, e.Request) (3L, 3L) "the crashing request"
                  Expect.isTrue f.Crashed "crashed"
                  let! later = crashed (fun () -> s.GetAsync("a", ct))
                  Expect.equal (later.CrashedAt, later.Request) (3L, 4L) "later requests refused"
                  let! _ = crashed (fun () -> task { do! s.DeleteAsync("a", ct) })
                  Expect.equal (List.ofSeq memory.Keys) [ "a" ] "b not applied, a not deleted"
                  Expect.equal f.RequestCount 5L "requests received"
                  f.Heal()
                  Expect.isFalse f.Crashed "healed"
                  let! g = s.GetAsync("a", ct)
                  Expect.equal g.Data [||] "works again"
              })

          testCaseTask "crash at request N after its effect: applied, response lost" (fun () ->
              task {
                  let memory = InMemoryObjectStore()
                  let f = FaultInjectingObjectStore(memory)
                  let s = f :> IObjectStore
                  f.CrashAt(2L, false)
                  let! _ = put s "a" [||] CreateIfAbsent
                  let! _ = crashed (fun () -> put s "b" [||] CreateIfAbsent)
                  let! _ = crashed (fun () -> put s "c" [||] CreateIfAbsent)
                  Expect.equal (List.ofSeq memory.Keys) [ "a"; "b" ] "b applied, c refused"
              })

          testCaseTask "CrashAtMutation counts only puts and deletes, from the call on" (fun () ->
              task {
                  let memory = InMemoryObjectStore()
                  let f = FaultInjectingObjectStore(memory)
                  let s = f :> IObjectStore
                  let! _ = put s "a" [||] CreateIfAbsent
                  f.CrashAtMutation(2L, true)

                  for _ in 1..5 do
                      let! _ = s.GetAsync("a", ct)
                      ()

                  do! s.DeleteAsync("a", ct)
                  let! _ = s.ListAsync("", ct)
                  let! e = crashed (fun () -> put s "b" [||] CreateIfAbsent)
                  Expect.equal e.CrashedAt 9L "the 9th request overall"
                  Expect.equal f.MutationCount 3L "mutations"
                  Expect.equal memory.Count 0 "delete applied, b not"
              })

          testCaseTask "random faults before and after the effect do not kill the store" (fun () ->
              task {
                  for share, applied in [ 0.0, false; 1.0, true ] do
                      let memory = InMemoryObjectStore()
                      let f = FaultInjectingObjectStore(memory)
                      let s = f :> IObjectStore
                      f.FailRandomly(1.0, share, 5)
                      let! e = failure "put" (fun () -> put s "k" [||] CreateIfAbsent)
                      Expect.equal e.Kind ObjectStoreErrorKind.Transient "transient"
                      Expect.stringContains e.Message "injected" "says injected"
                      Expect.equal (memory.Count = 1) applied $"share {share}: applied"
                      Expect.isFalse f.Crashed "alive"
                      f.FailRandomly(0.0, 5)
                      let! _ = s.ListAsync("", ct)
                      Expect.equal f.FaultCount 1L "one fault"
              })

          testCaseTask "random faults are reproducible from the seed" (fun () ->
              task {
                  let pattern () =
                      task {
                          let f = FaultInjectingObjectStore(InMemoryObjectStore())
                          f.FailRandomly(0.3, 0.5, 99)
                          let s = f :> IObjectStore
                          let acc = ResizeArray()

                          for i in 1..200 do
                              let! ok =
                                  task {
                                      try
                                          let! _ = s.HeadAsync("missing", ct)
                                          return 'x'
                                      with :? ObjectStoreException as e ->
                                          return if e.Kind = ObjectStoreErrorKind.Transient then 't' else 'n'
                                  }

                              acc.Add(i, ok)

                          return List.ofSeq acc
                      }

                  let! a = pattern ()
                  let! b = pattern ()
                  Expect.equal a b "same seed, same faults"
                  let faults = a |> List.filter (fun (_, c) -> c = 't') |> List.length
                  Expect.isTrue (faults > 30 && faults < 100) $"about 30 percent faulted ({faults})"
              })

          testCaseTask "OnFault runs between the effect and the raised fault" (fun () ->
              task {
                  let memory = InMemoryObjectStore()
                  let f = FaultInjectingObjectStore(memory)
                  let seen = ResizeArray<InjectedFault * int>()

                  f.OnFault <-
                      hook (fun fault ->
                          seen.Add(fault, memory.Count)
                          Task.CompletedTask)

                  f.SetSchedule(
                      schedule (fun r ->
                          if r.Number = 1L then
                              FaultAction.FailAfterEffect
                          else
                              FaultAction.Pass)
                  )

                  let! _ = failure "put" (fun () -> put f "k" [||] CreateIfAbsent)
                  let fault, count = seen.[0]

                  Expect.equal
                      (fault.Action, fault.Request.Verb, fault.Request.Key)
                      (FaultAction.FailAfterEffect, ObjectStoreVerb.Put, "k")
                      "fault"

                  Expect.equal (fault.Request.Number, fault.Request.MutationNumber) (1L, 1L) "numbers"
                  Expect.equal count 1 "already applied when the hook runs"
              })

          testCaseTask "SlowDown adds a delay on the injected clock" (fun () ->
              task {
                  let clock = RecordingClock()
                  let f = FaultInjectingObjectStore(InMemoryObjectStore(), clock)
                  f.SlowDown(TimeSpan.FromMilliseconds 25.0)
                  let! _ = (f :> IObjectStore).ListAsync("", ct)
                  f.Heal()
                  let! _ = (f :> IObjectStore).ListAsync("", ct)
                  Expect.equal clock.Delays [ TimeSpan.FromMilliseconds 25.0 ] "one delayed request"
              })

          testCaseTask "a retrying store over a crashed store gives up at once" (fun () ->
              task {
                  let f = FaultInjectingObjectStore(InMemoryObjectStore())
                  let s = retrying f noWait :> IObjectStore
                  f.CrashAt(1L, false)
                  let! _ = crashed (fun () -> put s "a" [||] CreateIfAbsent)
                  Expect.equal f.RequestCount 1L "not retried"
              }) ]

// ---------------------------------------------------------------------------------------------
// Conformance through the decorators

let private conformanceTests =
    let local (wrap: IObjectStore -> IObjectStore) () : IObjectStore =
        let dir = new TempDir()
        new Owned(wrap (LocalFileObjectStore(dir.Path)), dir) :> IObjectStore

    testList
        "conformance through decorators"
        [ ObjectStoreTests.conformance "Retrying(Metered(InMemory))" (fun () ->
              retrying (MeteredObjectStore(InMemoryObjectStore())) RetryOptions.defaults :> IObjectStore)
          ObjectStoreTests.conformance "Retrying(LocalFile)" (local (fun s -> retrying s RetryOptions.defaults))
          ObjectStoreTests.conformance "FaultInjecting(InMemory), healthy" (fun () ->
              FaultInjectingObjectStore(InMemoryObjectStore()) :> IObjectStore)
          ObjectStoreTests.conformance "Latency(s3-express, InMemory)" (fun () ->
              LatencyObjectStore(InMemoryObjectStore(), LatencyProfile.s3Express, Random 1) :> IObjectStore) ]

let allTests =
    testList
        "Decorators"
        [ testList "retrying store" [ randomFaultTests; ambiguityTests; policyTests; attributeFallbackTests ]
          meteredTests
          latencyTests
          faultTests
          conformanceTests ]
