/// The Slate object store on Amazon S3 and S3-compatible endpoints (SPEC §2.5), built on AWSSDK.S3.
namespace Slate.ObjectStores.S3

// AWSSDK v4's IAmazonS3 declares static abstract members; using it as an ordinary interface type
// (as the SDK intends for client instances) triggers FS3536.
#nowarn "3536"

open System
open System.Collections.Generic
open System.Collections.ObjectModel
open System.IO
open System.Net
open System.Net.Http
open System.Net.Sockets
open System.Runtime.InteropServices
open System.Threading
open System.Threading.Tasks
open Amazon
open Amazon.Runtime
open Amazon.S3
open Amazon.S3.Model
open Slate.Engine

/// Where and how an `S3ObjectStore` connects.
type S3StoreConfig =
    {
        /// The bucket (must exist; the store never creates buckets).
        Bucket: string
        /// An optional key prefix inside the bucket ("a/b" stores key `k` as "a/b/k"); leading and
        /// trailing '/' are ignored. None (or an empty string) stores keys at the bucket root.
        Prefix: string option
        /// A custom endpoint URL for S3-compatible services (for example "http://127.0.0.1:9000").
        /// None uses the AWS endpoint of the region.
        ServiceUrl: string option
        /// The AWS region ("eu-west-1"). None takes the SDK's default region chain (AWS_REGION,
        /// profile, instance metadata); with a custom `ServiceUrl` it is the signing region and
        /// defaults to "us-east-1".
        Region: string option
        /// Path-style addressing (`endpoint/bucket/key`), needed by most S3-compatible endpoints.
        ForcePathStyle: bool
        /// The access key id; given together with `SecretKey`. None for both takes the SDK's
        /// default credential chain (environment, profile, web identity, instance role).
        AccessKey: string option
        /// The secret access key matching `AccessKey`.
        SecretKey: string option
        /// The page size asked of ListObjectsV2 (1 to 1000). None uses the server default (1000).
        ListPageSize: int option
    }

/// Building `S3StoreConfig` values and SDK clients from them.
[<RequireQualifiedAccess>]
module S3StoreConfig =

    /// A configuration for `bucket` with every other setting at its default (AWS endpoint,
    /// default region and credential chains, virtual-hosted addressing, no prefix).
    let create (bucket: string) : S3StoreConfig =
        { Bucket = bucket
          Prefix = None
          ServiceUrl = None
          Region = None
          ForcePathStyle = false
          AccessKey = None
          SecretKey = None
          ListPageSize = None }

    let private nonEmpty (s: string) =
        if String.IsNullOrWhiteSpace s then None else Some s

    /// The configuration named by `url` = "s3://bucket[/prefix]", completed from the environment
    /// variables read through `getEnv` (null or empty means unset): the endpoint from
    /// AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL (a custom endpoint switches on path-style
    /// addressing); the region from AWS_REGION, else AWS_DEFAULT_REGION; the keys from
    /// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY when both are set and AWS_SESSION_TOKEN is not
    /// (otherwise the SDK's credential chain, which also handles session tokens). Raises
    /// `ArgumentException` for a malformed URL.
    let ofUrl (getEnv: string -> string) (url: string) : S3StoreConfig =
        if isNull url then
            nullArg "url"

        let scheme = "s3://"

        if not (url.StartsWith(scheme, StringComparison.OrdinalIgnoreCase)) then
            invalidArg "url" $"'{url}' is not an S3 URL (expected s3://bucket[/prefix])"

        let rest = url.Substring scheme.Length
        let slash = rest.IndexOf '/'

        let bucket, prefix =
            if slash < 0 then
                rest, ""
            else
                rest.Substring(0, slash), rest.Substring(slash + 1)

        if bucket.Length = 0 then
            invalidArg "url" $"'{url}' names no bucket (expected s3://bucket[/prefix])"

        let env name = getEnv name |> nonEmpty

        let endpoint = env "AWS_ENDPOINT_URL_S3" |> Option.orElse (env "AWS_ENDPOINT_URL")

        let keys =
            match env "AWS_ACCESS_KEY_ID", env "AWS_SECRET_ACCESS_KEY", env "AWS_SESSION_TOKEN" with
            | Some a, Some s, None -> Some a, Some s
            | _ -> None, None

        { create bucket with
            Prefix = nonEmpty (prefix.Trim '/')
            ServiceUrl = endpoint
            Region = env "AWS_REGION" |> Option.orElse (env "AWS_DEFAULT_REGION")
            ForcePathStyle = endpoint.IsSome
            AccessKey = fst keys
            SecretKey = snd keys }

    /// The normalised key prefix ("" or "a/b/") of `config`; raises `ArgumentException` when the
    /// prefix is not a valid object-key path.
    let rootOf (config: S3StoreConfig) : string =
        match config.Prefix |> Option.map (fun p -> p.Trim '/') with
        | None
        | Some "" -> ""
        | Some p ->
            match ObjectKey.problem p with
            | null -> p + "/"
            | problem -> invalidArg "config" $"invalid S3 key prefix '{p}': {problem}"

    /// Raises `ArgumentException` unless `config` is usable.
    let validate (config: S3StoreConfig) : unit =
        if String.IsNullOrWhiteSpace config.Bucket then
            invalidArg "config" "the S3 bucket name is empty"

        rootOf config |> ignore

        match config.AccessKey, config.SecretKey with
        | Some _, None
        | None, Some _ -> invalidArg "config" "AccessKey and SecretKey must be given together"
        | _ -> ()

        match config.ListPageSize with
        | Some n when n < 1 || n > 1000 -> invalidArg "config" $"ListPageSize {n} is outside 1..1000"
        | _ -> ()

    /// An SDK client for `config`. The SDK's own retries are switched off (`MaxErrorRetry = 0`):
    /// Slate's retrying store retries `Transient` failures itself and disambiguates a conditional
    /// put whose answer was lost by its `slatedbputid` (SPEC §2.4); an SDK-internal retry of such a
    /// put would instead surface the false `412` of the retry as a plain `AlreadyExists` or
    /// `PreconditionFailed`. With a custom `ServiceUrl` the optional SDK checksums are limited to
    /// operations that require them, since many S3-compatible services reject the SDK's default
    /// trailing checksums.
    let createClient (config: S3StoreConfig) : IAmazonS3 =
        validate config
        let c = AmazonS3Config()
        c.MaxErrorRetry <- 0
        c.ForcePathStyle <- config.ForcePathStyle

        match config.ServiceUrl with
        | Some url ->
            c.ServiceURL <- url
            c.AuthenticationRegion <- defaultArg config.Region "us-east-1"
            c.RequestChecksumCalculation <- RequestChecksumCalculation.WHEN_REQUIRED
            c.ResponseChecksumValidation <- ResponseChecksumValidation.WHEN_REQUIRED
        | None ->
            match config.Region with
            | Some r -> c.RegionEndpoint <- RegionEndpoint.GetBySystemName r
            | None -> ()

        match config.AccessKey, config.SecretKey with
        | Some a, Some s -> new AmazonS3Client(BasicAWSCredentials(a, s), c) :> IAmazonS3
        | _ -> new AmazonS3Client(c) :> IAmazonS3

/// What a request was doing, for error normalisation.
type private Operation =
    | Reading
    | Writing of PutMode
    | Deleting
    | Listing

/// An `IObjectStore` on one S3 bucket (optionally below a key prefix), for AWS S3 and
/// S3-compatible endpoints (SPEC §2.5):
///
/// - `CreateIfAbsent` puts carry `If-None-Match: *`; `IfMatch` puts carry `If-Match: <etag>`;
///   `Overwrite` puts are unconditional. The service decides atomically.
/// - etags are S3's own (quoted) ETags. For single-part uploads S3 derives them from the content
///   (MD5), so writing identical bytes again, even after a delete, yields the same etag; distinct
///   contents always get distinct etags.
/// - user attributes are stored as user metadata (`slatedbputid` -> `x-amz-meta-slatedbputid`);
///   S3 lower-cases their names, so `HeadAsync` returns lower-case names. Names and values must be
///   printable ASCII.
/// - `LastModified` is the server time truncated to whole seconds (the precision of S3's headers),
///   so that get, head and list agree.
/// - list pages through ListObjectsV2 with continuation tokens and sorts by key (ordinal); keys
///   that are not valid object keys (such as "dir/" folder markers) are skipped.
/// - errors are normalised per SPEC §2.2: 412 on create -> `AlreadyExists`; 412 on `IfMatch`, and
///   404 on `IfMatch` of a missing key -> `PreconditionFailed`; 404 -> `NotFound` (a missing bucket
///   too, with a message naming it); 501 -> `NotSupported`; 409 `ConditionalRequestConflict`, 5xx,
///   throttling, other 4xx (S3 answers 400 `RequestTimeout` and `ExpiredToken`), timeouts and
///   connection failures -> `Transient`. SDK client errors unrelated to the network (for example
///   no credentials found) are not store failures and propagate unchanged.
///
/// A store built from an `S3StoreConfig` owns its client (see `S3StoreConfig.createClient` for its
/// retry settings) and disposes it; a store built on an existing `IAmazonS3` leaves that client
/// (and its retry settings) to the caller.
type S3ObjectStore private (client: IAmazonS3, bucket: string, root: string, pageSize: int option, ownsClient: bool) =

    static let metaPrefix = "x-amz-meta-"

    let fullKey (key: string) = root + key

    let toUtcSeconds (d: Nullable<DateTime>) : DateTimeOffset =
        if not d.HasValue then
            DateTimeOffset.UnixEpoch
        else
            let v = d.Value

            let utc =
                match v.Kind with
                | DateTimeKind.Unspecified -> DateTime.SpecifyKind(v, DateTimeKind.Utc)
                | _ -> v.ToUniversalTime()

            DateTimeOffset(utc.Ticks - utc.Ticks % TimeSpan.TicksPerSecond, TimeSpan.Zero)

    let meta (key: string) (size: int64) (lastModified: Nullable<DateTime>) (etag: string) : ObjectMeta =
        { Key = key
          Size = size
          LastModified = toUtcSeconds lastModified
          ETag = etag }

    let rec chain (e: exn) : exn list =
        if isNull e then
            []
        else
            match e with
            | :? AggregateException as a when a.InnerExceptions.Count = 1 -> e :: chain a.InnerExceptions.[0]
            | _ -> e :: chain e.InnerException

    let isNetwork (e: exn) =
        match e with
        | :? HttpRequestException
        | :? IOException
        | :? SocketException
        | :? TimeoutException
        | :? WebException
        | :? OperationCanceledException -> true
        | _ -> false

    /// The normalised exception for a failure `e` of `op` on `key` (SPEC §2.2).
    let normalise (ct: CancellationToken) (op: Operation) (key: string) (e: exn) : exn =
        let status (s: AmazonServiceException) = int s.StatusCode

        match e with
        | :? ObjectStoreException -> e
        | :? OperationCanceledException when ct.IsCancellationRequested -> e
        | _ when ct.IsCancellationRequested -> OperationCanceledException("the S3 request was cancelled", e, ct)
        | _ ->
            let service =
                chain e
                |> List.tryPick (fun x ->
                    match x with
                    | :? AmazonServiceException as s when int s.StatusCode <> 0 -> Some s
                    | _ -> None)

            let what =
                match op with
                | Reading -> "read"
                | Writing _ -> "put"
                | Deleting -> "delete"
                | Listing -> "list"

            match service with
            | Some s ->
                let code = if isNull s.ErrorCode then "" else s.ErrorCode

                let describe =
                    $"S3 {what} of '{bucket}/{fullKey key}' failed with {status s} {code}: {s.Message}"

                match op, status s with
                | Writing CreateIfAbsent, 412 -> ObjectStoreException.AlreadyExists key :> exn
                | Writing(IfMatch etag), 412 ->
                    ObjectStoreException.PreconditionFailed(key, $"the current etag is not {etag}")
                | _, 404 when code = "NoSuchBucket" ->
                    ObjectStoreException(ObjectStoreErrorKind.NotFound, key, $"S3 bucket '{bucket}' does not exist", e)
                | Writing(IfMatch _), 404 -> ObjectStoreException.PreconditionFailed(key, "the object does not exist")
                | _, 404 -> ObjectStoreException.NotFound(key, e)
                | _, 501 -> ObjectStoreException(ObjectStoreErrorKind.NotSupported, key, describe, e)
                | _ -> ObjectStoreException(ObjectStoreErrorKind.Transient, key, describe, e)
            | None when chain e |> List.exists isNetwork -> ObjectStoreException.Transient(key, $"S3 {what}", e)
            | None -> e

    let guard (ct: CancellationToken) (op: Operation) (key: string) (f: unit -> Task<'a>) : Task<'a> =
        task {
            try
                ct.ThrowIfCancellationRequested()
                return! f ()
            with e ->
                return raise (normalise ct op key e)
        }

    let checkAttributes (attributes: IReadOnlyDictionary<string, string>) =
        let printable (s: string) =
            not (isNull s) && s |> Seq.forall (fun c -> c >= ' ' && c <= '~')

        if ObjectStore.hasAttributes attributes then
            for kv in attributes do
                if String.IsNullOrEmpty kv.Key || not (printable kv.Key) || kv.Key.Contains ' ' then
                    invalidArg "attributes" $"S3 user metadata name '{kv.Key}' must be printable ASCII without spaces"

                if not (printable kv.Value) then
                    invalidArg "attributes" $"S3 user metadata value of '{kv.Key}' must be printable ASCII"

    let streamOf (data: ReadOnlyMemory<byte>) : Stream =
        match MemoryMarshal.TryGetArray data with
        | true, segment -> new MemoryStream(segment.Array, segment.Offset, segment.Count, false)
        | _ -> new MemoryStream(data.ToArray(), false)

    let readAll (response: GetObjectResponse) (ct: CancellationToken) : Task<byte[]> =
        task {
            use body = response.ResponseStream
            let length = response.ContentLength

            if length >= 0L && length <= int64 Array.MaxLength then
                let data = Array.zeroCreate (int length)
                do! body.ReadExactlyAsync(data.AsMemory(), ct)
                return data
            else
                use copy = new MemoryStream()
                do! body.CopyToAsync(copy, ct)
                return copy.ToArray()
        }

    let head (key: string) (ct: CancellationToken) : Task<HeadResult> =
        guard ct Reading key (fun () ->
            task {
                let! r =
                    client.GetObjectMetadataAsync(GetObjectMetadataRequest(BucketName = bucket, Key = fullKey key), ct)

                let attrs = Dictionary<string, string>(StringComparer.Ordinal)

                if not (isNull r.Metadata) then
                    for name in r.Metadata.Keys do
                        let plain =
                            if name.StartsWith(metaPrefix, StringComparison.OrdinalIgnoreCase) then
                                name.Substring metaPrefix.Length
                            else
                                name

                        attrs.[plain.ToLowerInvariant()] <- r.Metadata.[name]

                return
                    { Meta = meta key r.ContentLength r.LastModified r.ETag
                      Attributes = ReadOnlyDictionary<string, string>(attrs) }
            })

    /// A store on `bucket` below the normalised `root` of `config`, owning a client made by
    /// `S3StoreConfig.createClient`.
    new(config: S3StoreConfig) =
        S3StoreConfig.validate config

        new S3ObjectStore(
            S3StoreConfig.createClient config,
            config.Bucket,
            S3StoreConfig.rootOf config,
            config.ListPageSize,
            true
        )

    /// A store on `bucket` (below `prefix` when given) using an existing client, which the store
    /// neither configures nor disposes.
    new(client: IAmazonS3, bucket: string, prefix: string option) =
        if isNull (box client) then
            nullArg "client"

        let config =
            { S3StoreConfig.create bucket with
                Prefix = prefix }

        S3StoreConfig.validate config
        new S3ObjectStore(client, bucket, S3StoreConfig.rootOf config, None, false)

    /// A store for "s3://bucket[/prefix]" configured from the process environment (see
    /// `S3StoreConfig.ofUrl`).
    static member FromUrl(url: string) : S3ObjectStore =
        new S3ObjectStore(S3StoreConfig.ofUrl Environment.GetEnvironmentVariable url)

    /// A store for "s3://bucket[/prefix]" configured from the variables `getEnv` returns (see
    /// `S3StoreConfig.ofUrl`).
    static member FromUrl(url: string, getEnv: Func<string, string>) : S3ObjectStore =
        if isNull getEnv then
            nullArg "getEnv"

        new S3ObjectStore(S3StoreConfig.ofUrl getEnv.Invoke url)

    /// The bucket this store works in.
    member _.Bucket: string = bucket

    /// The key prefix inside the bucket ("" or ending in '/').
    member _.Root: string = root

    /// The SDK client the store sends its requests with.
    member _.Client: IAmazonS3 = client

    interface IObjectStore with
        member _.PutAsync(key, data, mode, attributes, ct) =
            ObjectKey.validate key
            ObjectStore.validateMode mode
            checkAttributes attributes

            guard ct (Writing mode) key (fun () ->
                task {
                    let request =
                        PutObjectRequest(BucketName = bucket, Key = fullKey key, InputStream = streamOf data)

                    match mode with
                    | CreateIfAbsent -> request.IfNoneMatch <- "*"
                    | IfMatch etag -> request.IfMatch <- etag
                    | Overwrite -> ()

                    if ObjectStore.hasAttributes attributes then
                        for kv in attributes do
                            request.Metadata.[kv.Key] <- kv.Value

                    let! r = client.PutObjectAsync(request, ct)
                    return { ETag = r.ETag }
                })

        member _.GetAsync(key, ct) =
            ObjectKey.validate key

            guard ct Reading key (fun () ->
                task {
                    use! r = client.GetObjectAsync(GetObjectRequest(BucketName = bucket, Key = fullKey key), ct)
                    let! data = readAll r ct

                    return
                        { Data = data
                          Meta = meta key (int64 data.Length) r.LastModified r.ETag }
                })

        member _.GetRangeAsync(key, start, endExclusive, ct) =
            ObjectKey.validate key
            ObjectStore.validateRange start endExclusive

            if start = endExclusive then
                // HTTP cannot ask for zero bytes; prove the object exists instead.
                task {
                    let! _ = head key ct
                    return Array.empty<byte>
                }
            else
                guard ct Reading key (fun () ->
                    task {
                        let request =
                            GetObjectRequest(
                                BucketName = bucket,
                                Key = fullKey key,
                                ByteRange = ByteRange(start, endExclusive - 1L)
                            )

                        let! outcome =
                            task {
                                try
                                    let! r = client.GetObjectAsync(request, ct)
                                    return Some r
                                with e ->
                                    match
                                        chain e
                                        |> List.tryPick (fun x ->
                                            match x with
                                            | :? AmazonS3Exception as s -> Some s
                                            | _ -> None)
                                    with
                                    | Some s when s.StatusCode = HttpStatusCode.RequestedRangeNotSatisfiable ->
                                        return None
                                    | _ -> return raise e
                            }

                        match outcome with
                        | None -> return Array.empty<byte> // start at or past the end
                        | Some r ->
                            use response = r
                            return! readAll response ct
                    })

        member _.HeadAsync(key, ct) =
            ObjectKey.validate key
            head key ct

        member _.ListAsync(prefix, ct) =
            ObjectKey.validatePrefix prefix

            guard ct Listing prefix (fun () ->
                task {
                    let found = ResizeArray<ObjectMeta>()
                    let mutable token: string = null
                    let mutable more = true

                    while more do
                        let request = ListObjectsV2Request(BucketName = bucket, Prefix = root + prefix)

                        match pageSize with
                        | Some n -> request.MaxKeys <- n
                        | None -> ()

                        if not (isNull token) then
                            request.ContinuationToken <- token

                        let! page = client.ListObjectsV2Async(request, ct)

                        if not (isNull page.S3Objects) then
                            for o in page.S3Objects do
                                if o.Key.StartsWith(root, StringComparison.Ordinal) then
                                    let key = o.Key.Substring root.Length

                                    if ObjectKey.isValid key then
                                        let size = if o.Size.HasValue then o.Size.Value else 0L
                                        found.Add(meta key size o.LastModified o.ETag)

                        token <- page.NextContinuationToken
                        more <- page.IsTruncated.GetValueOrDefault false && not (isNull token)

                    found.Sort(fun a b -> String.CompareOrdinal(a.Key, b.Key))
                    return found :> IReadOnlyList<ObjectMeta>
                })

        member _.DeleteAsync(key, ct) =
            ObjectKey.validate key

            guard ct Deleting key (fun () ->
                task {
                    let! _ = client.DeleteObjectAsync(DeleteObjectRequest(BucketName = bucket, Key = fullKey key), ct)
                    return ()
                })
            :> Task

        member _.Describe = $"s3://{bucket}/{root}"

    interface IDisposable with
        member _.Dispose() =
            if ownsClient then
                client.Dispose()
