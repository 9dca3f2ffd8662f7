namespace Slate.Engine

open System
open System.Collections.Generic
open System.Threading
open System.Threading.Tasks

/// One stored version inside `InMemoryObjectStore` (never mutated after creation).
[<NoComparison; NoEquality>]
type private MemoryObject =
    { Data: byte[]
      Meta: ObjectMeta
      Attributes: IReadOnlyDictionary<string, string> }

/// An `IObjectStore` held entirely in memory: a dictionary behind one lock. It is the reference
/// backend of the property tests and the simulation harness (like Equinox's `VolatileStore`), and
/// it honours the whole contract of SPEC §2:
///
/// - etags are a store-wide counter ("1", "2", …) incremented on every successful put, so every
///   write of a key gets a new etag, even after a delete and re-create;
/// - `LastModified` is read from the injected `TimeProvider` at write time;
/// - user attributes are stored with the object and returned by `HeadAsync`;
/// - `CreateIfAbsent` and `IfMatch` are atomic (decided under the lock);
/// - data is copied on put and on every read, so callers may reuse or mutate their buffers.
///
/// All operations complete synchronously (the returned tasks are already finished) after
/// checking the cancellation token.
type InMemoryObjectStore(timeProvider: TimeProvider) =
    let gate = obj ()
    let objects = Dictionary<string, MemoryObject>(StringComparer.Ordinal)
    let mutable lastETag = 0L

    do
        if isNull timeProvider then
            nullArg "timeProvider"

    let find (key: string) : MemoryObject =
        lock gate (fun () ->
            match objects.TryGetValue key with
            | true, o -> o
            | _ -> raise (ObjectStoreException.NotFound key))

    let put
        (key: string)
        (data: ReadOnlyMemory<byte>)
        (mode: PutMode)
        (attributes: IReadOnlyDictionary<string, string>)
        : PutResult =
        let bytes = data.ToArray()
        let attrs = ObjectStore.copyAttributes attributes

        lock gate (fun () ->
            match mode, objects.TryGetValue key with
            | CreateIfAbsent, (true, _) -> raise (ObjectStoreException.AlreadyExists key)
            | IfMatch _, (false, _) ->
                raise (ObjectStoreException.PreconditionFailed(key, "the object does not exist"))
            | IfMatch etag, (true, current) when not (String.Equals(etag, current.Meta.ETag, StringComparison.Ordinal)) ->
                raise (
                    ObjectStoreException.PreconditionFailed(
                        key,
                        $"expected etag '{etag}' but the current etag is '{current.Meta.ETag}'"
                    )
                )
            | _ ->
                lastETag <- lastETag + 1L
                let etag = string lastETag

                let meta =
                    { Key = key
                      Size = int64 bytes.Length
                      LastModified = timeProvider.GetUtcNow()
                      ETag = etag }

                objects.[key] <-
                    { Data = bytes
                      Meta = meta
                      Attributes = attrs }

                { ETag = etag })

    /// Runs `f` to completion: a cancelled token gives a cancelled task, an
    /// `ObjectStoreException` a faulted one (argument errors are raised synchronously).
    static let run (ct: CancellationToken) (f: unit -> 'T) : Task<'T> =
        if ct.IsCancellationRequested then
            Task.FromCanceled<'T> ct
        else
            try
                Task.FromResult(f ())
            with :? ObjectStoreException as e ->
                Task.FromException<'T> e

    /// A store whose `LastModified` times come from the system clock.
    new() = InMemoryObjectStore(TimeProvider.System)

    /// The number of objects currently stored.
    member _.Count: int = lock gate (fun () -> objects.Count)

    /// The keys currently stored, sorted ordinally (a snapshot, for tests and diagnostics).
    member _.Keys: IReadOnlyList<string> =
        lock gate (fun () ->
            let keys = Array.ofSeq objects.Keys
            Array.sortInPlaceWith (fun (a: string) b -> String.CompareOrdinal(a, b)) keys
            keys :> IReadOnlyList<string>)

    interface IObjectStore with
        member _.PutAsync
            (key: string, data: ReadOnlyMemory<byte>, mode: PutMode, attributes, ct: CancellationToken)
            : Task<PutResult> =
            ObjectKey.validate key
            ObjectStore.validateMode mode
            run ct (fun () -> put key data mode attributes)

        member _.GetAsync(key: string, ct: CancellationToken) : Task<GetResult> =
            ObjectKey.validate key

            run ct (fun () ->
                let o = find key

                { Data = Array.copy o.Data
                  Meta = o.Meta })

        member _.GetRangeAsync(key: string, start: int64, endExclusive: int64, ct: CancellationToken) : Task<byte[]> =
            ObjectKey.validate key
            ObjectStore.validateRange start endExclusive

            run ct (fun () ->
                let o = find key
                let len = int64 o.Data.Length
                let s = min start len
                let e = min endExclusive len
                o.Data.AsSpan(int s, int (e - s)).ToArray())

        member _.HeadAsync(key: string, ct: CancellationToken) : Task<HeadResult> =
            ObjectKey.validate key

            run ct (fun () ->
                let o = find key

                { Meta = o.Meta
                  Attributes = o.Attributes })

        member _.ListAsync(prefix: string, ct: CancellationToken) : Task<IReadOnlyList<ObjectMeta>> =
            ObjectKey.validatePrefix prefix

            run ct (fun () ->
                let found =
                    lock gate (fun () ->
                        let acc = ResizeArray<ObjectMeta>()

                        for kv in objects do
                            if kv.Key.StartsWith(prefix, StringComparison.Ordinal) then
                                acc.Add kv.Value.Meta

                        acc)

                found.Sort(fun a b -> String.CompareOrdinal(a.Key, b.Key))
                found :> IReadOnlyList<ObjectMeta>)

        member _.DeleteAsync(key: string, ct: CancellationToken) : Task =
            ObjectKey.validate key
            run ct (fun () -> lock gate (fun () -> objects.Remove key |> ignore)) :> Task

        member _.Describe: string = "memory://"
