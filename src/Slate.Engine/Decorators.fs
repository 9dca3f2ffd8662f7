/// Decorators of `IObjectStore` (CONVENTIONS habit 4): retries with the ambiguous-create check of
/// SPEC §2.4, request metering, simulated object-storage latency (BENCHMARKS.md) and fault
/// injection for crash and retry tests. Each wraps an inner store and is itself an `IObjectStore`.
namespace Slate.Engine

open System
open System.Collections.Generic
open System.Collections.ObjectModel
open System.Runtime.ExceptionServices
open System.Threading
open System.Threading.Tasks
open Slate.Model

/// The six request kinds of `IObjectStore`, used by metering, latency profiles and fault schedules.
type ObjectStoreVerb =
    /// `PutAsync`.
    | Put = 0
    /// `GetAsync`.
    | Get = 1
    /// `GetRangeAsync`.
    | GetRange = 2
    /// `HeadAsync`.
    | Head = 3
    /// `ListAsync`.
    | List = 4
    /// `DeleteAsync`.
    | Delete = 5

/// Task helpers shared by the decorators.
module internal Decorate =

    /// Raises `e` again, keeping its original stack trace.
    let rethrow<'T> (e: exn) : 'T =
        ExceptionDispatchInfo.Capture(e).Throw()
        Unchecked.defaultof<'T>

    /// Calls `f`; a synchronously raised `ObjectStoreException` becomes a faulted task, while
    /// argument errors stay synchronous (as the contract wants).
    let start (f: unit -> Task<'T>) : Task<'T> =
        try
            f ()
        with :? ObjectStoreException as e ->
            Task.FromException<'T> e

    /// Awaits `t`: `Ok` with its result or `Error` with the store failure (other exceptions,
    /// cancellation included, propagate).
    let attempt (t: Task<'T>) : Task<Result<'T, ObjectStoreException>> =
        task {
            try
                let! r = t
                return Ok r
            with :? ObjectStoreException as e ->
                return Error e
        }

    /// A `Task<unit>` completing with the already-started `t`.
    let ofUnitTask (t: Task) : Task<unit> = task { do! t }

    /// The verbs that change the store.
    let isMutation (verb: ObjectStoreVerb) : bool =
        verb = ObjectStoreVerb.Put || verb = ObjectStoreVerb.Delete

// ---------------------------------------------------------------------------------------------
// Retries (SPEC §2.4)

/// Back-off settings of `RetryingObjectStore` (SPEC §2.4).
type RetryOptions =
    {
        /// How many times a failed request is retried after its first attempt; `None` retries
        /// until success or cancellation (the SPEC default, `ObjectStoreMaxRetries = null`);
        /// `Some 0` makes exactly one attempt.
        MaxRetries: int option
        /// The base delay before the first retry (doubles on each further retry).
        InitialDelay: TimeSpan
        /// The cap of the base delay.
        MaxDelay: TimeSpan
    }

/// Functions over `RetryOptions`.
[<RequireQualifiedAccess>]
module RetryOptions =

    /// SPEC §2.4: unbounded retries, back-off from 100 ms to 1 s.
    let defaults: RetryOptions =
        { MaxRetries = None
          InitialDelay = TimeSpan.FromMilliseconds 100.0
          MaxDelay = TimeSpan.FromSeconds 1.0 }

    /// Raises `ArgumentException` for a negative `MaxRetries`, a negative `InitialDelay` or a
    /// `MaxDelay` below `InitialDelay`.
    let validate (options: RetryOptions) : unit =
        match options.MaxRetries with
        | Some n when n < 0 -> invalidArg "options" $"MaxRetries must not be negative ({n})"
        | _ -> ()

        if options.InitialDelay < TimeSpan.Zero then
            invalidArg "options" $"InitialDelay must not be negative ({options.InitialDelay})"

        if options.MaxDelay < options.InitialDelay then
            invalidArg
                "options"
                $"MaxDelay ({options.MaxDelay}) must not be below InitialDelay ({options.InitialDelay})"

    /// The wait before retry number `retry` (0 = the first retry) for a uniform draw `u` in
    /// [0, 1] ("equal jitter"): with `b = min(MaxDelay, InitialDelay * 2^retry)` the wait is
    /// `b * (0.5 + 0.5 * u)`, so it lies in [b/2, b] and never exceeds `MaxDelay`.
    let backoff (options: RetryOptions) (retry: int) (u: float) : TimeSpan =
        let initial = float options.InitialDelay.Ticks
        let cap = float options.MaxDelay.Ticks
        let b = min cap (initial * Math.Pow(2.0, float (Math.Clamp(retry, 0, 62))))
        let u = if Double.IsNaN u then 0.0 else Math.Clamp(u, 0.0, 1.0)
        TimeSpan.FromTicks(int64 (b * (0.5 + 0.5 * u)))

/// An `IObjectStore` that retries `Transient` failures of `inner` (SPEC §2.4); the engine wraps
/// every backend in one.
///
/// - Only `Transient` is retried; `AlreadyExists`, `PreconditionFailed`, `NotFound`,
///   `NotModified` and `NotSupported` surface at once. Back-off: `RetryOptions.backoff` with a
///   draw from `random`, waited with `Task.Delay(_, timeProvider, ct)` (whole milliseconds);
///   `MaxRetries` bounds the retries, cancellation of `ct` stops them (raising
///   `OperationCanceledException`). When retries are exhausted the last `ObjectStoreException`
///   is raised unchanged.
/// - Every conditional put (`CreateIfAbsent`, `IfMatch`) carries a fresh ULID put id as user
///   attribute `slatedbputid` (merged over the caller's attributes), the same on every attempt.
///   `Overwrite` puts carry the caller's attributes only. A put is never turned into `Overwrite`.
/// - Attributes fallback: when a put that sent attributes fails with `NotSupported`, it is
///   retried at once (not counted as a retry) without any attributes (the caller's are dropped
///   too). If that attempt gets a definite answer other than `NotSupported`, the store is
///   remembered to lack attribute support and no later put sends attributes; if it fails with
///   `NotSupported` again, that error surfaces (it was not about attributes).
/// - Ambiguous put: when an attempt failed with `Transient` (it may have been applied) and a later
///   attempt fails with `AlreadyExists` (`CreateIfAbsent`) or `PreconditionFailed` (`IfMatch`),
///   the object is `Head`ed (with retries): if its `slatedbputid` equals this put's id, the put
///   succeeded and `{ ETag = head etag }` is returned; otherwise (other id, no id, object gone)
///   the original error is raised. Without attribute support there is no proof, so the error is
///   raised (a lost-response create is then reported as `AlreadyExists`).
/// - Reads, lists and deletes are retried freely.
///
/// `Describe` is the inner store's. `random` is used under a lock (a seeded `Random` makes put
/// ids and jitter reproducible).
type RetryingObjectStore(inner: IObjectStore, options: RetryOptions, timeProvider: TimeProvider, random: Random) =
    do
        if isNull (box inner) then
            nullArg "inner"

        if isNull timeProvider then
            nullArg "timeProvider"

        if isNull random then
            nullArg "random"

        RetryOptions.validate options

    let randomGate = obj ()

    [<VolatileField>]
    let mutable attributesSupported = true

    let nextDouble () : float =
        lock randomGate (fun () -> random.NextDouble())

    let newPutId () : string =
        let ms =
            Math.Clamp(timeProvider.GetUtcNow().ToUnixTimeMilliseconds(), 0L, (1L <<< 48) - 1L)

        let bytes = Array.zeroCreate<byte> 10
        lock randomGate (fun () -> random.NextBytes bytes)
        let high = BitConverter.ToUInt16(bytes, 8)
        let low = BitConverter.ToUInt64(bytes, 0)
        Ulid.toString (Ulid.create ms high low)

    let withPutId (attributes: IReadOnlyDictionary<string, string>) (putId: string) =
        let d = Dictionary<string, string>(StringComparer.Ordinal)

        if ObjectStore.hasAttributes attributes then
            for kv in attributes do
                d.[kv.Key] <- kv.Value

        d.[RetryingObjectStore.PutIdAttribute] <- putId
        ReadOnlyDictionary<string, string>(d) :> IReadOnlyDictionary<string, string>

    let exhausted (retries: int) : bool =
        match options.MaxRetries with
        | Some m -> retries >= m
        | None -> false

    let pause (retries: int) (ct: CancellationToken) : Task =
        let d = RetryOptions.backoff options retries (nextDouble ())

        if d <= TimeSpan.Zero then
            ct.ThrowIfCancellationRequested()
            Task.CompletedTask
        else
            Task.Delay(d, timeProvider, ct)

    /// Awaits `first`, retrying with `again` while the failure is `Transient` and retries remain.
    let retry (first: Task<'T>) (again: unit -> Task<'T>) (ct: CancellationToken) : Task<'T> =
        task {
            let mutable current = first
            let mutable retries = 0
            let mutable result = ValueNone

            while result.IsNone do
                match! Decorate.attempt current with
                | Ok r -> result <- ValueSome r
                | Error e when e.Kind = ObjectStoreErrorKind.Transient && not (exhausted retries) ->
                    do! pause retries ct
                    retries <- retries + 1
                    current <- Decorate.start again
                | Error e -> result <- ValueSome(Decorate.rethrow e)

            return result.Value
        }

    let isConditionalLoss (mode: PutMode) (kind: ObjectStoreErrorKind) : bool =
        match mode with
        | CreateIfAbsent -> kind = ObjectStoreErrorKind.AlreadyExists
        | IfMatch _ -> kind = ObjectStoreErrorKind.PreconditionFailed
        | Overwrite -> false

    let put
        (key: string)
        (data: ReadOnlyMemory<byte>)
        (mode: PutMode)
        (attributes: IReadOnlyDictionary<string, string>)
        (ct: CancellationToken)
        : Task<PutResult> =
        let putId =
            match mode with
            | Overwrite -> null
            | CreateIfAbsent
            | IfMatch _ -> newPutId ()

        let full =
            if isNull putId then
                attributes
            else
                withPutId attributes putId

        let send (useAttributes: bool) : Task<PutResult> =
            let attrs = if useAttributes then full else ObjectStore.noAttributes
            Decorate.start (fun () -> inner.PutAsync(key, data, mode, attrs, ct))

        let headOnce () = inner.HeadAsync(key, ct)
        let initialUse = attributesSupported && ObjectStore.hasAttributes full
        let first = send initialUse

        task {
            let mutable current = first
            let mutable sentAttributes = initialUse
            let mutable useAttributes = initialUse
            let mutable idSent = initialUse && not (isNull putId)
            let mutable fallback = false
            let mutable ambiguous = false
            let mutable retries = 0
            let mutable result = ValueNone

            while result.IsNone do
                let! outcome = Decorate.attempt current

                match outcome with
                | Error e when
                    e.Kind = ObjectStoreErrorKind.NotSupported
                    || e.Kind = ObjectStoreErrorKind.Transient
                    ->
                    ()
                | _ ->
                    if fallback then
                        attributesSupported <- false
                        fallback <- false

                match outcome with
                | Ok r -> result <- ValueSome r
                | Error e when e.Kind = ObjectStoreErrorKind.NotSupported && sentAttributes ->
                    useAttributes <- false
                    sentAttributes <- false
                    fallback <- true
                    current <- send false
                | Error e when e.Kind = ObjectStoreErrorKind.Transient && not (exhausted retries) ->
                    ambiguous <- true
                    do! pause retries ct
                    retries <- retries + 1
                    sentAttributes <- useAttributes
                    idSent <- idSent || (useAttributes && not (isNull putId))
                    current <- send useAttributes
                | Error e when ambiguous && idSent && isConditionalLoss mode e.Kind ->
                    match! Decorate.attempt (retry (Decorate.start headOnce) headOnce ct) with
                    | Ok head ->
                        match head.Attributes.TryGetValue RetryingObjectStore.PutIdAttribute with
                        | true, id when String.Equals(id, putId, StringComparison.Ordinal) ->
                            result <- ValueSome { ETag = head.Meta.ETag }
                        | _ -> result <- ValueSome(Decorate.rethrow e)
                    | Error he when he.Kind = ObjectStoreErrorKind.NotFound -> result <- ValueSome(Decorate.rethrow e)
                    | Error he -> result <- ValueSome(Decorate.rethrow he)
                | Error e -> result <- ValueSome(Decorate.rethrow e)

            return result.Value
        }

    /// The user attribute that carries a conditional put's id: "slatedbputid".
    static member PutIdAttribute: string = "slatedbputid"

    /// False once the inner store was found to reject user attributes (see the type's docs).
    member _.AttributesSupported: bool = attributesSupported

    /// The wrapped store.
    member _.Inner: IObjectStore = inner

    interface IObjectStore with
        member _.PutAsync(key, data, mode, attributes, ct) =
            ObjectKey.validate key
            ObjectStore.validateMode mode
            put key data mode attributes ct

        member _.GetAsync(key, ct) =
            let once () = inner.GetAsync(key, ct)
            retry (Decorate.start once) once ct

        member _.GetRangeAsync(key, start, endExclusive, ct) =
            let once () =
                inner.GetRangeAsync(key, start, endExclusive, ct)

            retry (Decorate.start once) once ct

        member _.HeadAsync(key, ct) =
            let once () = inner.HeadAsync(key, ct)
            retry (Decorate.start once) once ct

        member _.ListAsync(prefix, ct) =
            let once () = inner.ListAsync(prefix, ct)
            retry (Decorate.start once) once ct

        member _.DeleteAsync(key, ct) =
            let once () =
                Decorate.ofUnitTask (inner.DeleteAsync(key, ct))

            retry (Decorate.start once) once ct :> Task

        member _.Describe = inner.Describe

// ---------------------------------------------------------------------------------------------
// Metering

/// Functions over `RetryingObjectStore`.
[<RequireQualifiedAccess>]
module RetryingObjectStore =
    /// `store` behind the retrying store of SPEC §2.4 with the default back-off, `maxRetries`
    /// (None = until success or cancellation) and a random source seeded with `seed`; a store that
    /// already retries is returned as it is. Every writer, reader, admin and compactor uses this.
    let ensure (maxRetries: int option) (time: TimeProvider) (seed: int) (store: IObjectStore) : IObjectStore =
        match store with
        | :? RetryingObjectStore -> store
        | _ ->
            RetryingObjectStore(
                store,
                { RetryOptions.defaults with
                    MaxRetries = maxRetries },
                time,
                Random(seed)
            )
            :> IObjectStore

/// Failed requests counted by `ObjectStoreErrorKind`.
type ErrorCounts =
    {
        /// `AlreadyExists` failures.
        AlreadyExists: int64
        /// `PreconditionFailed` failures.
        PreconditionFailed: int64
        /// `NotFound` failures.
        NotFound: int64
        /// `NotModified` failures.
        NotModified: int64
        /// `NotSupported` failures.
        NotSupported: int64
        /// `Transient` failures.
        Transient: int64
    }

    /// All failures counted.
    member this.Total: int64 =
        this.AlreadyExists
        + this.PreconditionFailed
        + this.NotFound
        + this.NotModified
        + this.NotSupported
        + this.Transient

/// A snapshot of the counters of a `MeteredObjectStore`.
type StoreMetrics =
    {
        /// `PutAsync` requests (successful or not).
        Puts: int64
        /// `GetAsync` requests.
        Gets: int64
        /// `GetRangeAsync` requests.
        GetRanges: int64
        /// `HeadAsync` requests.
        Heads: int64
        /// `ListAsync` requests.
        Lists: int64
        /// `DeleteAsync` requests.
        Deletes: int64
        /// Payload bytes of all put requests (sent, whether the put succeeded or not).
        BytesWritten: int64
        /// Bytes returned by successful `GetAsync` and `GetRangeAsync` requests.
        BytesRead: int64
        /// Failed requests by kind (cancellations and argument errors are not counted here).
        Errors: ErrorCounts
    }

    /// All requests counted.
    member this.Requests: int64 =
        this.Puts + this.Gets + this.GetRanges + this.Heads + this.Lists + this.Deletes

/// Functions over `StoreMetrics`.
[<RequireQualifiedAccess>]
module StoreMetrics =

    /// All counters zero.
    let zero: StoreMetrics =
        { Puts = 0L
          Gets = 0L
          GetRanges = 0L
          Heads = 0L
          Lists = 0L
          Deletes = 0L
          BytesWritten = 0L
          BytesRead = 0L
          Errors =
            { AlreadyExists = 0L
              PreconditionFailed = 0L
              NotFound = 0L
              NotModified = 0L
              NotSupported = 0L
              Transient = 0L } }

    /// The request count of one verb.
    let requests (verb: ObjectStoreVerb) (m: StoreMetrics) : int64 =
        match verb with
        | ObjectStoreVerb.Put -> m.Puts
        | ObjectStoreVerb.Get -> m.Gets
        | ObjectStoreVerb.GetRange -> m.GetRanges
        | ObjectStoreVerb.Head -> m.Heads
        | ObjectStoreVerb.List -> m.Lists
        | ObjectStoreVerb.Delete -> m.Deletes
        | _ -> invalidArg "verb" $"unknown verb {verb}"

    /// The counts of `later` minus those of `earlier` (what happened in between).
    let diff (later: StoreMetrics) (earlier: StoreMetrics) : StoreMetrics =
        let e = later.Errors
        let f = earlier.Errors

        { Puts = later.Puts - earlier.Puts
          Gets = later.Gets - earlier.Gets
          GetRanges = later.GetRanges - earlier.GetRanges
          Heads = later.Heads - earlier.Heads
          Lists = later.Lists - earlier.Lists
          Deletes = later.Deletes - earlier.Deletes
          BytesWritten = later.BytesWritten - earlier.BytesWritten
          BytesRead = later.BytesRead - earlier.BytesRead
          Errors =
            { AlreadyExists = e.AlreadyExists - f.AlreadyExists
              PreconditionFailed = e.PreconditionFailed - f.PreconditionFailed
              NotFound = e.NotFound - f.NotFound
              NotModified = e.NotModified - f.NotModified
              NotSupported = e.NotSupported - f.NotSupported
              Transient = e.Transient - f.Transient } }

/// An `IObjectStore` that counts the requests reaching `inner`: requests per verb (counted when
/// issued, after the generic key checks of `ObjectKey`, whatever their outcome), put payload bytes,
/// bytes read by successful gets, and failures per `ObjectStoreErrorKind`. Counters are updated
/// with `Interlocked`, so the store is as thread-safe as `inner`; a `Snapshot` taken while
/// requests run reads each counter atomically but not all of them at one instant.
/// `Describe` is the inner store's.
type MeteredObjectStore(inner: IObjectStore) =
    do
        if isNull (box inner) then
            nullArg "inner"

    let verbs = Array.zeroCreate<int64> 6
    let errors = Array.zeroCreate<int64> 6
    let bytes = Array.zeroCreate<int64> 2 // 0 = written, 1 = read

    let count (verb: ObjectStoreVerb) =
        Interlocked.Increment(&verbs.[int verb]) |> ignore

    let observe (t: Task<'T>) (size: 'T -> int64) : Task<'T> =
        let onOk (r: 'T) =
            let n = size r

            if n > 0L then
                Interlocked.Add(&bytes.[1], n) |> ignore

        if t.IsCompletedSuccessfully then
            onOk t.Result
            t
        else
            task {
                try
                    let! r = t
                    onOk r
                    return r
                with :? ObjectStoreException as e ->
                    let k = int e.Kind

                    if k >= 0 && k < errors.Length then
                        Interlocked.Increment(&errors.[k]) |> ignore

                    return Decorate.rethrow e
            }

    let read (i: int) = Interlocked.Read(&verbs.[i])
    let err (i: int) = Interlocked.Read(&errors.[i])

    /// The wrapped store.
    member _.Inner: IObjectStore = inner

    /// The current counters.
    member _.Snapshot() : StoreMetrics =
        { Puts = read 0
          Gets = read 1
          GetRanges = read 2
          Heads = read 3
          Lists = read 4
          Deletes = read 5
          BytesWritten = Interlocked.Read(&bytes.[0])
          BytesRead = Interlocked.Read(&bytes.[1])
          Errors =
            { AlreadyExists = err 0
              PreconditionFailed = err 1
              NotFound = err 2
              NotModified = err 3
              NotSupported = err 4
              Transient = err 5 } }

    /// Sets every counter to zero.
    member _.Reset() : unit =
        for a in [| verbs; errors; bytes |] do
            for i in 0 .. a.Length - 1 do
                Interlocked.Exchange(&a.[i], 0L) |> ignore

    interface IObjectStore with
        member _.PutAsync(key, data, mode, attributes, ct) =
            ObjectKey.validate key
            ObjectStore.validateMode mode
            count ObjectStoreVerb.Put
            Interlocked.Add(&bytes.[0], int64 data.Length) |> ignore
            observe (Decorate.start (fun () -> inner.PutAsync(key, data, mode, attributes, ct))) (fun _ -> 0L)

        member _.GetAsync(key, ct) =
            ObjectKey.validate key
            count ObjectStoreVerb.Get
            observe (Decorate.start (fun () -> inner.GetAsync(key, ct))) (fun r -> int64 r.Data.Length)

        member _.GetRangeAsync(key, start, endExclusive, ct) =
            ObjectKey.validate key
            ObjectStore.validateRange start endExclusive
            count ObjectStoreVerb.GetRange

            observe (Decorate.start (fun () -> inner.GetRangeAsync(key, start, endExclusive, ct))) (fun r ->
                int64 r.Length)

        member _.HeadAsync(key, ct) =
            ObjectKey.validate key
            count ObjectStoreVerb.Head
            observe (Decorate.start (fun () -> inner.HeadAsync(key, ct))) (fun _ -> 0L)

        member _.ListAsync(prefix, ct) =
            ObjectKey.validatePrefix prefix
            count ObjectStoreVerb.List
            observe (Decorate.start (fun () -> inner.ListAsync(prefix, ct))) (fun _ -> 0L)

        member _.DeleteAsync(key, ct) =
            ObjectKey.validate key
            count ObjectStoreVerb.Delete

            observe (Decorate.start (fun () -> Decorate.ofUnitTask (inner.DeleteAsync(key, ct)))) (fun () -> 0L) :> Task

        member _.Describe = inner.Describe

// ---------------------------------------------------------------------------------------------
// Latency (BENCHMARKS.md "Object-storage latency profiles")

/// One point of a latency quantile table.
type LatencyPoint =
    {
        /// The quantile in [0, 1].
        Quantile: float
        /// The latency at that quantile, in milliseconds.
        Milliseconds: float
    }

/// A simulated object-storage latency profile: a quantile table for small PUT-like and GET-like
/// requests (linear interpolation between points, sorted by quantile, first at 0 and last at 1)
/// plus a per-stream bandwidth for the payload.
type LatencyProfile =
    {
        /// The profile's name, e.g. "s3-standard".
        Name: string
        /// Latency table of puts, deletes and lists.
        Put: LatencyPoint[]
        /// Latency table of gets, ranged gets and heads.
        Get: LatencyPoint[]
        /// Payload bandwidth per request in bytes per second (`infinity`: no transfer time).
        BytesPerSecond: float
    }

/// The profiles of BENCHMARKS.md and the pure sampling function.
[<RequireQualifiedAccess>]
module LatencyProfile =

    /// A table from a minimum and p50/p90/p99 (ms). Beyond p99 the latency grows linearly to
    /// p100 = 2 × p99 (the tail is extrapolated, not measured); below p50 it falls linearly to the
    /// minimum at quantile 0.
    let table (minimum: float) (p50: float) (p90: float) (p99: float) : LatencyPoint[] =
        [| { Quantile = 0.0
             Milliseconds = minimum }
           { Quantile = 0.5; Milliseconds = p50 }
           { Quantile = 0.9; Milliseconds = p90 }
           { Quantile = 0.99; Milliseconds = p99 }
           { Quantile = 1.0
             Milliseconds = 2.0 * p99 } |]

    /// No added latency and unlimited bandwidth.
    let local: LatencyProfile =
        { Name = "local"
          Put = table 0.0 0.0 0.0 0.0
          Get = table 0.0 0.0 0.0 0.0
          BytesPerSecond = Double.PositiveInfinity }

    /// S3 Standard: PUT 28/37/74 ms (min 20), GET 25/40/88 ms (min 19), 37 MB/s (37e6 bytes/s).
    let s3Standard: LatencyProfile =
        { Name = "s3-standard"
          Put = table 20.0 28.0 37.0 74.0
          Get = table 19.0 25.0 40.0 88.0
          BytesPerSecond = 37e6 }

    /// S3 Express One Zone: PUT 5/7/10 ms, GET 3/5/8 ms, 100 MB/s. BENCHMARKS.md gives no
    /// minimum; this profile assumes min = 2 × p50 − p90 (PUT 3 ms, GET 1 ms).
    let s3Express: LatencyProfile =
        { Name = "s3-express"
          Put = table 3.0 5.0 7.0 10.0
          Get = table 1.0 3.0 5.0 8.0
          BytesPerSecond = 100e6 }

    /// The table `verb` draws from: `Put` for puts, deletes and lists (S3 prices and paces LIST
    /// like PUT); `Get` for gets, ranged gets and heads.
    let tableFor (profile: LatencyProfile) (verb: ObjectStoreVerb) : LatencyPoint[] =
        match verb with
        | ObjectStoreVerb.Put
        | ObjectStoreVerb.Delete
        | ObjectStoreVerb.List -> profile.Put
        | _ -> profile.Get

    /// The latency (ms) at quantile `u` of a table: linear interpolation between the two points
    /// around `u`; `u` at or below the first point gives the first value, beyond the last the
    /// last value. Raises `ArgumentException` for an empty table or a `u` outside [0, 1].
    let quantile (points: LatencyPoint[]) (u: float) : float =
        if isNull points || points.Length = 0 then
            invalidArg "points" "the latency table is empty"

        if not (u >= 0.0 && u <= 1.0) then
            invalidArg "u" $"the quantile must lie in [0, 1] ({u})"

        if u <= points.[0].Quantile then
            points.[0].Milliseconds
        else
            let mutable i = 0

            while i < points.Length - 1 && u > points.[i + 1].Quantile do
                i <- i + 1

            if i = points.Length - 1 then
                points.[i].Milliseconds
            else
                let a = points.[i]
                let b = points.[i + 1]
                let span = b.Quantile - a.Quantile

                if span <= 0.0 then
                    b.Milliseconds
                else
                    a.Milliseconds + (b.Milliseconds - a.Milliseconds) * ((u - a.Quantile) / span)

    /// The transfer time (ms) of `bytes` at the profile's bandwidth.
    let transferMilliseconds (profile: LatencyProfile) (bytes: int64) : float =
        if bytes <= 0L || Double.IsPositiveInfinity profile.BytesPerSecond then
            0.0
        else
            1000.0 * float bytes / profile.BytesPerSecond

    /// The simulated duration of one request of `verb` moving `bytes` payload bytes, for a uniform
    /// draw `u` in [0, 1]: `quantile (tableFor profile verb) u + transferMilliseconds profile bytes`,
    /// rounded to ticks. Non-decreasing in `u` and in `bytes`; at least the table's minimum.
    let sample (profile: LatencyProfile) (verb: ObjectStoreVerb) (u: float) (bytes: int64) : TimeSpan =
        let ms = quantile (tableFor profile verb) u + transferMilliseconds profile bytes
        TimeSpan.FromTicks(int64 (Math.Round(ms * float TimeSpan.TicksPerMillisecond)))

/// An `IObjectStore` that delays each request of `inner` by `LatencyProfile.sample` with a fresh
/// draw from `random` (used under a lock), waited with `Task.Delay(_, timeProvider, ct)` and
/// rounded to whole milliseconds (zero waits are skipped). Puts, heads, lists and deletes wait
/// before reaching `inner` (a put's payload size is known); gets and ranged gets read first and
/// then wait for the latency plus the transfer of the bytes read. Semantics are unchanged.
/// `Describe` is the inner store's.
type LatencyObjectStore(inner: IObjectStore, profile: LatencyProfile, random: Random, timeProvider: TimeProvider) =
    do
        if isNull (box inner) then
            nullArg "inner"

        if isNull random then
            nullArg "random"

        if isNull timeProvider then
            nullArg "timeProvider"

    let gate = obj ()

    let wait (verb: ObjectStoreVerb) (bytes: int64) (u: float) (ct: CancellationToken) : Task =
        let d = LatencyProfile.sample profile verb u bytes
        let ms = Math.Round d.TotalMilliseconds

        if ms <= 0.0 then
            Task.CompletedTask
        else
            Task.Delay(TimeSpan.FromMilliseconds ms, timeProvider, ct)

    let draw () =
        lock gate (fun () -> random.NextDouble())

    let before (verb: ObjectStoreVerb) (bytes: int64) (ct: CancellationToken) (f: unit -> Task<'T>) : Task<'T> =
        let w = wait verb bytes (draw ()) ct

        if w.IsCompleted then
            Decorate.start f
        else
            task {
                do! w
                return! f ()
            }

    let after (verb: ObjectStoreVerb) (size: 'T -> int64) (ct: CancellationToken) (f: unit -> Task<'T>) : Task<'T> =
        let u = draw ()
        let t = Decorate.start f

        task {
            let! r = t
            do! wait verb (size r) u ct
            return r
        }

    /// A latency store on the system clock.
    new(inner: IObjectStore, profile: LatencyProfile, random: Random) =
        LatencyObjectStore(inner, profile, random, TimeProvider.System)

    /// The profile in use.
    member _.Profile: LatencyProfile = profile

    /// The wrapped store.
    member _.Inner: IObjectStore = inner

    interface IObjectStore with
        member _.PutAsync(key, data, mode, attributes, ct) =
            ObjectKey.validate key
            ObjectStore.validateMode mode

            before ObjectStoreVerb.Put (int64 data.Length) ct (fun () ->
                inner.PutAsync(key, data, mode, attributes, ct))

        member _.GetAsync(key, ct) =
            ObjectKey.validate key
            after ObjectStoreVerb.Get (fun r -> int64 r.Data.Length) ct (fun () -> inner.GetAsync(key, ct))

        member _.GetRangeAsync(key, start, endExclusive, ct) =
            ObjectKey.validate key
            ObjectStore.validateRange start endExclusive

            after ObjectStoreVerb.GetRange (fun (r: byte[]) -> int64 r.Length) ct (fun () ->
                inner.GetRangeAsync(key, start, endExclusive, ct))

        member _.HeadAsync(key, ct) =
            ObjectKey.validate key
            before ObjectStoreVerb.Head 0L ct (fun () -> inner.HeadAsync(key, ct))

        member _.ListAsync(prefix, ct) =
            ObjectKey.validatePrefix prefix
            before ObjectStoreVerb.List 0L ct (fun () -> inner.ListAsync(prefix, ct))

        member _.DeleteAsync(key, ct) =
            ObjectKey.validate key

            before ObjectStoreVerb.Delete 0L ct (fun () -> Decorate.ofUnitTask (inner.DeleteAsync(key, ct))) :> Task

        member _.Describe = inner.Describe

// ---------------------------------------------------------------------------------------------
// Fault injection

/// What `FaultInjectingObjectStore` does with one request.
type FaultAction =
    /// Forward the request unchanged.
    | Pass = 0
    /// Raise `Transient` without forwarding (nothing applied).
    | FailBeforeEffect = 1
    /// Forward the request, discard its outcome and raise `Transient` (a lost response).
    | FailAfterEffect = 2
    /// Die without forwarding: raise `StoreCrashedException`; every later request is refused.
    | CrashBeforeEffect = 3
    /// Forward the request, discard its outcome, then die as for `CrashBeforeEffect`.
    | CrashAfterEffect = 4

/// A request as a fault schedule sees it.
type FaultRequest =
    {
        /// 1-based number of the request among all requests the store received.
        Number: int64
        /// 1-based number among mutating requests (puts and deletes); 0 for reads and lists.
        MutationNumber: int64
        /// The request kind.
        Verb: ObjectStoreVerb
        /// The object key (the prefix for lists).
        Key: string
    }

/// A fault that was injected, as passed to `FaultInjectingObjectStore.OnFault`.
type InjectedFault =
    {
        /// The faulted request.
        Request: FaultRequest
        /// The fault (never `Pass`).
        Action: FaultAction
    }

/// Raised by a crashed `FaultInjectingObjectStore` for the crashing request and every later one:
/// the simulated process died. Deliberately not an `ObjectStoreException`, so no layer retries it
/// or mistakes it for a store answer; crash tests catch it, then reopen on the inner store.
type StoreCrashedException(crashedAt: int64, request: int64, key: string) =
    inherit
        Exception(
            if request = crashedAt then
                $"simulated crash at request #{crashedAt} (object '{key}')"
            else
                $"request #{request} (object '{key}') refused: the store crashed at request #{crashedAt}"
        )

    /// The number of the request at which the store crashed.
    member _.CrashedAt: int64 = crashedAt

    /// The number of the request this exception answers.
    member _.Request: int64 = request

    /// The object key (or list prefix) of that request.
    member _.Key: string = key

/// An `IObjectStore` that injects faults into the requests to `inner`, for crash and retry tests.
/// Requests are numbered from 1 in arrival order (`RequestCount`; puts and deletes also in
/// `MutationCount`). Per request, in this order:
///
/// 1. a crashed store refuses it with `StoreCrashedException` (nothing forwarded);
/// 2. the crash rule (`CrashAt`, `CrashAtMutation`) may make it the crashing request;
/// 3. otherwise the schedule (`SetSchedule`) decides, if set;
/// 4. otherwise the random rule (`FailRandomly`) may fail it (before or after its effect);
/// 5. the added delay (`SlowDown`) is waited; then the action runs (see `FaultAction`):
///    injected `Transient` failures are `ObjectStoreException`s whose message says "injected".
///
/// `OnFault` (optional) is awaited after a faulted request took (or skipped) its effect and
/// before its exception is raised, so a test can act "between" a lost attempt and its retry
/// (another writer creating the object, say) through the inner store. `Heal` clears every rule
/// and revives a crashed store; the counters keep running. Rules, the schedule and the random
/// generator are used under one lock (a schedule must not call the store). Requests that pass
/// with no delay are forwarded synchronously. `Describe` is the inner store's.
type FaultInjectingObjectStore(inner: IObjectStore, timeProvider: TimeProvider) =
    do
        if isNull (box inner) then
            nullArg "inner"

        if isNull timeProvider then
            nullArg "timeProvider"

    let gate = obj ()
    let mutable requests = 0L
    let mutable mutations = 0L
    let mutable faults = 0L
    let mutable crashedAt = 0L
    // crash rule: the target number, whether it counts mutations only, and before/after effect
    let mutable crashRule: struct (int64 * bool * bool) voption = ValueNone
    // random rule: probability, share of after-effect faults, generator
    let mutable randomRule: struct (float * float * Random) voption = ValueNone
    let mutable schedule: Func<FaultRequest, FaultAction> = null
    let mutable delay = TimeSpan.Zero
    let mutable onFault: Func<InjectedFault, Task> = null

    /// Numbers the request and decides its fate: (request, action, refused-because-dead, delay).
    let decide (verb: ObjectStoreVerb) (key: string) =
        lock gate (fun () ->
            requests <- requests + 1L
            let mutating = Decorate.isMutation verb

            if mutating then
                mutations <- mutations + 1L

            let req =
                { Number = requests
                  MutationNumber = (if mutating then mutations else 0L)
                  Verb = verb
                  Key = key }

            if crashedAt > 0L then
                struct (req, FaultAction.Pass, true, TimeSpan.Zero)
            else
                let crash =
                    match crashRule with
                    | ValueSome(struct (target, mutationsOnly, beforeEffect)) when
                        (if mutationsOnly then
                             mutating && mutations = target
                         else
                             requests = target)
                        ->
                        ValueSome(
                            if beforeEffect then
                                FaultAction.CrashBeforeEffect
                            else
                                FaultAction.CrashAfterEffect
                        )
                    | _ -> ValueNone

                let action =
                    match crash with
                    | ValueSome a -> a
                    | ValueNone when not (isNull schedule) -> schedule.Invoke req
                    | ValueNone ->
                        match randomRule with
                        | ValueSome(struct (p, afterShare, rnd)) when rnd.NextDouble() < p ->
                            if rnd.NextDouble() < afterShare then
                                FaultAction.FailAfterEffect
                            else
                                FaultAction.FailBeforeEffect
                        | _ -> FaultAction.Pass

                if action = FaultAction.CrashBeforeEffect || action = FaultAction.CrashAfterEffect then
                    crashedAt <- requests

                if action <> FaultAction.Pass then
                    faults <- faults + 1L

                struct (req, action, false, delay))

    let notify (req: FaultRequest) (action: FaultAction) : Task =
        let hook = onFault

        if isNull hook then
            Task.CompletedTask
        else
            hook.Invoke { Request = req; Action = action }

    let transient (req: FaultRequest) (afterEffect: bool) : exn =
        let what =
            if afterEffect then
                "applied, response lost"
            else
                "not applied"

        ObjectStoreException(
            ObjectStoreErrorKind.Transient,
            req.Key,
            $"injected transient fault on {req.Verb} request #{req.Number} of object '{req.Key}' ({what})"
        )

    let crashed (req: FaultRequest) : exn =
        StoreCrashedException(lock gate (fun () -> crashedAt), req.Number, req.Key)

    let applyIgnoring (f: unit -> Task<'T>) : Task =
        task {
            try
                let! _ = f ()
                ()
            with :? ObjectStoreException ->
                ()
        }

    let run (verb: ObjectStoreVerb) (key: string) (ct: CancellationToken) (f: unit -> Task<'T>) : Task<'T> =
        let struct (req, action, dead, wait) = decide verb key

        if dead then
            Task.FromException<'T>(crashed req)
        elif action = FaultAction.Pass && wait <= TimeSpan.Zero then
            Decorate.start f
        else
            task {
                if wait > TimeSpan.Zero then
                    do! Task.Delay(wait, timeProvider, ct)

                match action with
                | FaultAction.Pass -> return! f ()
                | FaultAction.FailBeforeEffect ->
                    do! notify req action
                    return raise (transient req false)
                | FaultAction.FailAfterEffect ->
                    do! applyIgnoring f
                    do! notify req action
                    return raise (transient req true)
                | FaultAction.CrashBeforeEffect ->
                    do! notify req action
                    return raise (crashed req)
                | FaultAction.CrashAfterEffect ->
                    do! applyIgnoring f
                    do! notify req action
                    return raise (crashed req)
                | other -> return invalidOp $"unknown fault action {other}"
            }

    /// A fault injector whose delays use the system clock.
    new(inner: IObjectStore) = FaultInjectingObjectStore(inner, TimeProvider.System)

    /// The wrapped store (use it to inspect or change the state behind the faults).
    member _.Inner: IObjectStore = inner

    /// Requests received so far (including refused ones).
    member _.RequestCount: int64 = lock gate (fun () -> requests)

    /// Mutating requests (puts and deletes) received so far.
    member _.MutationCount: int64 = lock gate (fun () -> mutations)

    /// Faults injected so far (crashes included, refusals after a crash not).
    member _.FaultCount: int64 = lock gate (fun () -> faults)

    /// True once the store crashed (until `Heal`).
    member _.Crashed: bool = lock gate (fun () -> crashedAt > 0L)

    /// The number of the crashing request, or 0 when the store has not crashed.
    member _.CrashedAt: int64 = lock gate (fun () -> crashedAt)

    /// Crash at the `n`-th request from now (1 = the next one), counting all requests: before its
    /// effect (nothing applied) or after it (applied, then the response is lost).
    member _.CrashAt(n: int64, beforeEffect: bool) : unit =
        if n < 1L then
            invalidArg "n" $"the crash request must be at least 1 ({n})"

        lock gate (fun () -> crashRule <- ValueSome(struct (requests + n, false, beforeEffect)))

    /// Crash at the `n`-th mutating request (put or delete) from now; reads are not counted.
    member _.CrashAtMutation(n: int64, beforeEffect: bool) : unit =
        if n < 1L then
            invalidArg "n" $"the crash request must be at least 1 ({n})"

        lock gate (fun () -> crashRule <- ValueSome(struct (mutations + n, true, beforeEffect)))

    /// Fail each request with `Transient` with the given probability; `afterEffectShare` of the
    /// faults (in [0, 1]) happen after the effect (lost responses), the rest before it. Draws come
    /// from `Random(seed)`. The store never dies from these faults.
    member _.FailRandomly(probability: float, afterEffectShare: float, seed: int) : unit =
        if not (probability >= 0.0 && probability <= 1.0) then
            invalidArg "probability" $"must lie in [0, 1] ({probability})"

        if not (afterEffectShare >= 0.0 && afterEffectShare <= 1.0) then
            invalidArg "afterEffectShare" $"must lie in [0, 1] ({afterEffectShare})"

        lock gate (fun () -> randomRule <- ValueSome(struct (probability, afterEffectShare, Random(seed))))

    /// `FailRandomly(probability, 0.5, seed)`: half the faults before, half after the effect.
    member this.FailRandomly(probability: float, seed: int) : unit =
        this.FailRandomly(probability, 0.5, seed)

    /// Decide each request with `schedule` (consulted after the crash rule, before the random
    /// rule; null removes it). A schedule returning a crash action crashes the store.
    member _.SetSchedule(schedule': Func<FaultRequest, FaultAction>) : unit =
        lock gate (fun () -> schedule <- schedule')

    /// Add `delay` to every request (zero removes it).
    member _.SlowDown(delay': TimeSpan) : unit =
        if delay' < TimeSpan.Zero then
            invalidArg "delay" $"must not be negative ({delay'})"

        lock gate (fun () -> delay <- delay')

    /// Remove every rule, the schedule and the delay, and revive a crashed store.
    member _.Heal() : unit =
        lock gate (fun () ->
            crashRule <- ValueNone
            randomRule <- ValueNone
            schedule <- null
            delay <- TimeSpan.Zero
            crashedAt <- 0L)

    /// Awaited after each injected fault, before its exception is raised (null: none).
    member _.OnFault
        with get (): Func<InjectedFault, Task> = onFault
        and set (hook: Func<InjectedFault, Task>) = onFault <- hook

    interface IObjectStore with
        member _.PutAsync(key, data, mode, attributes, ct) =
            ObjectKey.validate key
            ObjectStore.validateMode mode
            run ObjectStoreVerb.Put key ct (fun () -> inner.PutAsync(key, data, mode, attributes, ct))

        member _.GetAsync(key, ct) =
            ObjectKey.validate key
            run ObjectStoreVerb.Get key ct (fun () -> inner.GetAsync(key, ct))

        member _.GetRangeAsync(key, start, endExclusive, ct) =
            ObjectKey.validate key
            ObjectStore.validateRange start endExclusive
            run ObjectStoreVerb.GetRange key ct (fun () -> inner.GetRangeAsync(key, start, endExclusive, ct))

        member _.HeadAsync(key, ct) =
            ObjectKey.validate key
            run ObjectStoreVerb.Head key ct (fun () -> inner.HeadAsync(key, ct))

        member _.ListAsync(prefix, ct) =
            ObjectKey.validatePrefix prefix
            run ObjectStoreVerb.List prefix ct (fun () -> inner.ListAsync(prefix, ct))

        member _.DeleteAsync(key, ct) =
            ObjectKey.validate key
            run ObjectStoreVerb.Delete key ct (fun () -> Decorate.ofUnitTask (inner.DeleteAsync(key, ct))) :> Task

        member _.Describe = inner.Describe
