/// The object-store contract (SPEC §2): the operations every backend offers, the normalised
/// error kinds, and the object-key rules shared by all backends.
namespace Slate.Engine

open System
open System.Collections.Generic
open System.Collections.ObjectModel
open System.Threading
open System.Threading.Tasks

/// The normalised failure kinds of every object store (SPEC §2.2). Backends map their native
/// failures onto exactly these; only `Transient` is retried by the retrying store.
type ObjectStoreErrorKind =
    /// A `CreateIfAbsent` put lost: the object already exists. Never retried.
    | AlreadyExists = 0
    /// An `IfMatch` put failed: the object's etag differs or the object is missing. Never retried.
    | PreconditionFailed = 1
    /// The object is absent (get, ranged get, head). Never retried.
    | NotFound = 2
    /// A conditional get matched the given etag. Never retried.
    | NotModified = 3
    /// The backend lacks a feature (for example user attributes on the local file system).
    /// Never retried; the caller falls back (for attributes: retries once without them).
    | NotSupported = 4
    /// Throttling, server errors, timeouts, connection resets, I/O errors. Retried with back-off.
    | Transient = 5

/// The only exception an `IObjectStore` raises for store failures (besides
/// `OperationCanceledException` on cancellation and `ArgumentException` for invalid keys, which
/// are programming errors). `Kind` is the contract; `Key` names the object; the message says
/// what happened.
type ObjectStoreException(kind: ObjectStoreErrorKind, key: string, message: string, inner: exn) =
    inherit Exception(message, inner)

    /// A failure of the given kind on the given key, without an inner exception.
    new(kind: ObjectStoreErrorKind, key: string, message: string) = ObjectStoreException(kind, key, message, null)

    /// The normalised kind of failure.
    member _.Kind: ObjectStoreErrorKind = kind

    /// The object key (or list prefix) the failed operation addressed.
    member _.Key: string = key

    /// `AlreadyExists` for `key`: "object '<key>' already exists".
    static member AlreadyExists(key: string) : ObjectStoreException =
        ObjectStoreException(ObjectStoreErrorKind.AlreadyExists, key, $"object '{key}' already exists")

    /// `PreconditionFailed` for `key` with a reason.
    static member PreconditionFailed(key: string, reason: string) : ObjectStoreException =
        ObjectStoreException(
            ObjectStoreErrorKind.PreconditionFailed,
            key,
            $"precondition failed for object '{key}': {reason}"
        )

    /// `NotFound` for `key`: "object '<key>' not found".
    static member NotFound(key: string) : ObjectStoreException =
        ObjectStoreException(ObjectStoreErrorKind.NotFound, key, $"object '{key}' not found")

    /// `NotFound` for `key` caused by a native exception.
    static member NotFound(key: string, inner: exn) : ObjectStoreException =
        ObjectStoreException(ObjectStoreErrorKind.NotFound, key, $"object '{key}' not found", inner)

    /// `NotSupported` for `key` naming the missing feature.
    static member NotSupported(key: string, feature: string) : ObjectStoreException =
        ObjectStoreException(ObjectStoreErrorKind.NotSupported, key, $"not supported for object '{key}': {feature}")

    /// `Transient` for `key`, describing the operation and wrapping the native cause.
    static member Transient(key: string, operation: string, inner: exn) : ObjectStoreException =
        let cause = if isNull inner then "unknown cause" else inner.Message

        ObjectStoreException(
            ObjectStoreErrorKind.Transient,
            key,
            $"{operation} of object '{key}' failed: {cause}",
            inner
        )

/// How a put treats an existing object (SPEC §2.1).
type PutMode =
    /// Unconditional replace (unused by the engine).
    | Overwrite
    /// Create only when absent; an existing object makes the put fail with `AlreadyExists`.
    | CreateIfAbsent
    /// Replace only when the current etag equals `etag`; a different etag or a missing object
    /// makes the put fail with `PreconditionFailed`.
    | IfMatch of etag: string

/// Metadata of one stored object.
type ObjectMeta =
    {
        /// The object key ('/'-separated, see `ObjectKey`).
        Key: string
        /// Size in bytes.
        Size: int64
        /// Time of the last write (server time; the injected clock for the in-memory store,
        /// the file mtime for the local store). GC ages use it.
        LastModified: DateTimeOffset
        /// Opaque version tag; changes on every write of the key. Compare with ordinal equality only.
        ETag: string
    }

/// The outcome of a successful put.
type PutResult =
    {
        /// The etag of the version just written.
        ETag: string
    }

/// A whole object read by `GetAsync`.
type GetResult =
    {
        /// The object's bytes (a fresh array the caller owns).
        Data: byte[]
        /// The metadata of exactly the version whose bytes are in `Data`.
        Meta: ObjectMeta
    }

/// The metadata and user attributes returned by `HeadAsync`.
[<NoComparison; NoEquality>]
type HeadResult =
    {
        /// The object's metadata.
        Meta: ObjectMeta
        /// User attributes stored with the object (never null; empty when there are none or the
        /// backend does not support them).
        Attributes: IReadOnlyDictionary<string, string>
    }

/// An object store as the engine sees it (SPEC §2). Implementations are thread-safe, strongly
/// consistent (read-after-write, list-after-write, read-after-delete) and make `CreateIfAbsent`
/// and `IfMatch` atomic: of N concurrent conditional puts of the same key and condition exactly
/// one succeeds. Failures are raised only as `ObjectStoreException` (normalised kinds); an
/// invalid key (see `ObjectKey.validate`) raises `ArgumentException`; cancellation raises
/// `OperationCanceledException`.
type IObjectStore =
    /// Writes `data` under `key` according to `mode`. `attributes` are user metadata (may be null
    /// or empty); a backend without user metadata raises `NotSupported` when they are non-empty,
    /// and the caller then retries without them. Returns the new version's etag.
    abstract PutAsync:
        key: string *
        data: ReadOnlyMemory<byte> *
        mode: PutMode *
        attributes: IReadOnlyDictionary<string, string> *
        ct: CancellationToken ->
            Task<PutResult>

    /// Reads a whole object and the metadata of that version. Missing -> `NotFound`.
    abstract GetAsync: key: string * ct: CancellationToken -> Task<GetResult>

    /// Reads bytes `[start, endExclusive)` of an object, clamped to its length: the result holds
    /// bytes `[min(start, len), min(endExclusive, len))`, so a range past the end is cut short and
    /// a start at or beyond the end yields an empty array. `start < 0` or `endExclusive < start`
    /// raises `ArgumentOutOfRangeException`. Missing -> `NotFound`.
    abstract GetRangeAsync: key: string * start: int64 * endExclusive: int64 * ct: CancellationToken -> Task<byte[]>

    /// Reads an object's metadata and user attributes. Missing -> `NotFound`.
    abstract HeadAsync: key: string * ct: CancellationToken -> Task<HeadResult>

    /// Lists every object whose key starts with `prefix` (plain string prefix: "a/b" matches
    /// "a/b/x" and "a/bc"; use a trailing '/' for a directory). The empty prefix lists all.
    /// The result is sorted by key in ordinal order.
    abstract ListAsync: prefix: string * ct: CancellationToken -> Task<IReadOnlyList<ObjectMeta>>

    /// Deletes an object; deleting a missing object succeeds (idempotent).
    abstract DeleteAsync: key: string * ct: CancellationToken -> Task

    /// A short description of the store for messages and logs, e.g. "memory://" or "file:///data".
    abstract Describe: string

/// Object-key rules shared by all backends. A key is a relative '/'-separated path: non-empty,
/// no leading '/', no empty segment (so no trailing '/' and no "//"), no "." or ".." segment, no
/// backslash and no control character. Database paths SHOULD further stick to `[A-Za-z0-9._/-]`
/// (SPEC §3) so that every backend maps them alike.
[<RequireQualifiedAccess>]
module ObjectKey =

    let private badChar (c: char) = c = '\\' || Char.IsControl c

    /// Why `key` is not a valid object key, or null when it is valid.
    let problem (key: string) : string =
        if isNull key then
            "key is null"
        elif key.Length = 0 then
            "key is empty"
        elif key.[0] = '/' then
            "key starts with '/'"
        else
            let segments = key.Split '/'

            if key |> Seq.exists badChar then
                "key contains a backslash or a control character"
            elif segments |> Array.exists (fun s -> s.Length = 0) then
                "key has an empty segment"
            elif segments |> Array.exists (fun s -> s = "." || s = "..") then
                "key has a '.' or '..' segment"
            else
                null

    /// True when `key` is a valid object key.
    let isValid (key: string) : bool = isNull (problem key)

    /// Raises `ArgumentException` (naming the key) unless `key` is a valid object key.
    let validate (key: string) : unit =
        match problem key with
        | null -> ()
        | p -> invalidArg "key" $"invalid object key '{key}': {p}"

    /// Raises `ArgumentException` unless `prefix` is a valid list prefix: empty, or a string whose
    /// complete segments (all but the text after the last '/') obey the key rules and which has no
    /// leading '/', backslash or control character. The last, partial segment may be empty.
    let validatePrefix (prefix: string) : unit =
        let fail p =
            invalidArg "prefix" $"invalid list prefix '{prefix}': {p}"

        if isNull prefix then
            fail "prefix is null"
        elif prefix.Length > 0 then
            if prefix.[0] = '/' then
                fail "prefix starts with '/'"

            if prefix |> Seq.exists badChar then
                fail "prefix contains a backslash or a control character"

            let segments = prefix.Split '/'
            let complete = segments.[.. segments.Length - 2]

            if complete |> Array.exists (fun s -> s.Length = 0) then
                fail "prefix has an empty segment"

            if complete |> Array.exists (fun s -> s = "." || s = "..") then
                fail "prefix has a '.' or '..' segment"

/// Small helpers shared by object-store backends and decorators.
[<RequireQualifiedAccess>]
module ObjectStore =

    /// An empty, read-only attribute dictionary.
    let noAttributes: IReadOnlyDictionary<string, string> =
        ReadOnlyDictionary<string, string>(Dictionary<string, string>(StringComparer.Ordinal))

    /// True when `attributes` is non-null and non-empty.
    let hasAttributes (attributes: IReadOnlyDictionary<string, string>) : bool =
        not (isNull attributes) && attributes.Count > 0

    /// A private read-only copy of `attributes` (ordinal keys); `noAttributes` for null or empty.
    let copyAttributes (attributes: IReadOnlyDictionary<string, string>) : IReadOnlyDictionary<string, string> =
        if hasAttributes attributes then
            let d = Dictionary<string, string>(attributes.Count, StringComparer.Ordinal)

            for kv in attributes do
                d.[kv.Key] <- kv.Value

            ReadOnlyDictionary<string, string>(d)
        else
            noAttributes

    /// Raises `ArgumentNullException` for `IfMatch null` (an etag is required).
    let validateMode (mode: PutMode) : unit =
        match mode with
        | IfMatch null -> nullArg "mode"
        | IfMatch _
        | Overwrite
        | CreateIfAbsent -> ()

    /// Raises `ArgumentOutOfRangeException` unless `0 <= start <= endExclusive`.
    let validateRange (start: int64) (endExclusive: int64) : unit =
        if start < 0L then
            raise (ArgumentOutOfRangeException("start", start, "range start must not be negative"))

        if endExclusive < start then
            raise (ArgumentOutOfRangeException("endExclusive", endExclusive, "range end must not be before its start"))
