/// The Slate object store on Azure Blob Storage (SPEC §2.5), built on Azure.Storage.Blobs.
namespace Slate.ObjectStores.Azure

open System
open System.Collections.Generic
open System.Collections.ObjectModel
open System.IO
open System.Net.Http
open System.Net.Sockets
open System.Threading
open System.Threading.Tasks
open Azure
open Azure.Storage
open Azure.Storage.Blobs
open Azure.Storage.Blobs.Models
open Slate.Engine

/// Where and how an `AzureBlobObjectStore` connects. Credentials come from `ConnectionString`, else
/// from `AccountName` + `AccountKey` (shared key, on `ServiceUri` or the account's public blob
/// endpoint), else `ServiceUri` alone (for example a URI with a SAS token).
type AzureBlobStoreConfig =
    {
        /// A storage connection string ("DefaultEndpointsProtocol=...;AccountName=...;...").
        ConnectionString: string option
        /// The storage account name (with `AccountKey`).
        AccountName: string option
        /// The storage account key (with `AccountName`).
        AccountKey: string option
        /// The blob service URI ("https://account.blob.core.windows.net" or an emulator's URI).
        ServiceUri: string option
        /// The container; created on first use when missing.
        Container: string
        /// An optional blob-name prefix inside the container ("a/b" stores key `k` as "a/b/k");
        /// leading and trailing '/' are ignored.
        Prefix: string option
        /// The page size asked of the list operation (1 to 5000). None uses the server default.
        ListPageSize: int option
    }

/// Building `AzureBlobStoreConfig` values and SDK clients from them.
[<RequireQualifiedAccess>]
module AzureBlobStoreConfig =

    /// A configuration for `container` using `connectionString`, every other setting at its default.
    let ofConnectionString (connectionString: string) (container: string) : AzureBlobStoreConfig =
        { ConnectionString = Some connectionString
          AccountName = None
          AccountKey = None
          ServiceUri = None
          Container = container
          Prefix = None
          ListPageSize = None }

    let private nonEmpty (s: string) =
        if String.IsNullOrWhiteSpace s then None else Some s

    /// The configuration named by `url` = "az://container[/prefix]" (also "azure://"), completed
    /// from the environment variables read through `getEnv` (null or empty means unset):
    /// AZURE_STORAGE_CONNECTION_STRING, else AZURE_STORAGE_ACCOUNT (or AZURE_STORAGE_ACCOUNT_NAME)
    /// with AZURE_STORAGE_KEY (or AZURE_STORAGE_ACCOUNT_KEY), and optionally
    /// AZURE_STORAGE_BLOB_ENDPOINT as the service URI. Raises `ArgumentException` for a malformed URL.
    let ofUrl (getEnv: string -> string) (url: string) : AzureBlobStoreConfig =
        if isNull url then
            nullArg "url"

        let rest =
            [ "az://"; "azure://" ]
            |> List.tryFind (fun s -> url.StartsWith(s, StringComparison.OrdinalIgnoreCase))
            |> Option.map (fun s -> url.Substring s.Length)

        match rest with
        | None -> invalidArg "url" $"'{url}' is not an Azure Blob URL (expected az://container[/prefix])"
        | Some rest ->
            let slash = rest.IndexOf '/'

            let container, prefix =
                if slash < 0 then
                    rest, ""
                else
                    rest.Substring(0, slash), rest.Substring(slash + 1)

            if container.Length = 0 then
                invalidArg "url" $"'{url}' names no container (expected az://container[/prefix])"

            let env name = getEnv name |> nonEmpty
            let either a b = env a |> Option.orElse (env b)

            { ConnectionString = env "AZURE_STORAGE_CONNECTION_STRING"
              AccountName = either "AZURE_STORAGE_ACCOUNT" "AZURE_STORAGE_ACCOUNT_NAME"
              AccountKey = either "AZURE_STORAGE_KEY" "AZURE_STORAGE_ACCOUNT_KEY"
              ServiceUri = env "AZURE_STORAGE_BLOB_ENDPOINT"
              Container = container
              Prefix = nonEmpty (prefix.Trim '/')
              ListPageSize = None }

    /// The normalised name prefix ("" or "a/b/") of `config`; raises `ArgumentException` when the
    /// prefix is not a valid object-key path.
    let rootOf (config: AzureBlobStoreConfig) : string =
        match config.Prefix |> Option.map (fun p -> p.Trim '/') with
        | None
        | Some "" -> ""
        | Some p ->
            match ObjectKey.problem p with
            | null -> p + "/"
            | problem -> invalidArg "config" $"invalid Azure blob prefix '{p}': {problem}"

    /// Raises `ArgumentException` unless `config` is usable.
    let validate (config: AzureBlobStoreConfig) : unit =
        if String.IsNullOrWhiteSpace config.Container then
            invalidArg "config" "the Azure container name is empty"

        rootOf config |> ignore

        match config.ConnectionString, config.AccountName, config.AccountKey, config.ServiceUri with
        | Some _, _, _, _ -> ()
        | None, Some _, Some _, _ -> ()
        | None, Some _, None, _
        | None, None, Some _, _ -> invalidArg "config" "AccountName and AccountKey must be given together"
        | None, None, None, Some _ -> ()
        | None, None, None, None ->
            invalidArg "config" "no Azure credentials: give ConnectionString, AccountName + AccountKey, or ServiceUri"

        match config.ListPageSize with
        | Some n when n < 1 || n > 5000 -> invalidArg "config" $"ListPageSize {n} is outside 1..5000"
        | _ -> ()

    /// A container client for `config`. The SDK's own retries are switched off
    /// (`Retry.MaxRetries = 0`): Slate's retrying store retries `Transient` failures itself and
    /// disambiguates a conditional put whose answer was lost by its `slatedbputid` (SPEC §2.4),
    /// whereas an SDK-internal retry of such a put would surface its false 409/412 as a plain
    /// `AlreadyExists` or `PreconditionFailed`.
    let createContainerClient (config: AzureBlobStoreConfig) : BlobContainerClient =
        validate config
        let options = BlobClientOptions()
        options.Retry.MaxRetries <- 0

        let service =
            match config.ConnectionString, config.AccountName, config.AccountKey, config.ServiceUri with
            | Some cs, _, _, _ -> BlobServiceClient(cs, options)
            | None, Some name, Some key, uri ->
                let endpoint = defaultArg uri $"https://{name}.blob.core.windows.net"
                BlobServiceClient(Uri endpoint, StorageSharedKeyCredential(name, key), options)
            | None, _, _, Some uri -> BlobServiceClient(Uri uri, options)
            | _ -> invalidArg "config" "no Azure credentials"

        service.GetBlobContainerClient config.Container

/// What a request was doing, for error normalisation.
type private Operation =
    | Reading
    | Writing of PutMode
    | Deleting
    | Listing

/// An `IObjectStore` on one Azure Blob container (optionally below a name prefix), SPEC §2.5:
///
/// - `CreateIfAbsent` puts carry `If-None-Match: *` (`ETag.All`); `IfMatch` puts carry
///   `If-Match: <etag>`; `Overwrite` puts are unconditional. The service decides atomically.
/// - etags are the service's ETags in their quoted header form (the list operation's unquoted
///   ones are quoted to match), new on every write.
/// - user attributes are blob metadata (`slatedbputid` -> `x-ms-meta-slatedbputid`); names must be
///   valid C# identifiers (an Azure rule), values printable ASCII.
/// - `LastModified` is the server time truncated to whole seconds, so that get, head and list agree.
/// - list pages through the flat blob listing by prefix and sorts by key (ordinal); names that are
///   not valid object keys are skipped.
/// - the container is created when missing (CreateIfNotExists) before the store's first request;
///   a failed attempt is retried on the next request.
/// - errors are normalised per SPEC §2.2: on create, 409 `BlobAlreadyExists` or 412 ->
///   `AlreadyExists`; on `IfMatch`, 412 `ConditionNotMet` or 404 `BlobNotFound` ->
///   `PreconditionFailed`; 404 -> `NotFound`; 501 -> `NotSupported`; 5xx, `ServerBusy`, throttling,
///   other 4xx, timeouts and connection failures -> `Transient`.
///
/// A store built from a config owns its SDK client; one built on an existing
/// `BlobContainerClient` uses that client's retry settings.
type AzureBlobObjectStore private (container: BlobContainerClient, root: string, pageSize: int option) =

    let gate = obj ()
    let mutable ensured: Task = null

    let fullKey (key: string) = root + key

    let toUtcSeconds (d: DateTimeOffset) : DateTimeOffset =
        let utc = d.UtcDateTime
        DateTimeOffset(utc.Ticks - utc.Ticks % TimeSpan.TicksPerSecond, TimeSpan.Zero)

    /// The quoted form of an etag: response headers quote ETags, list results do not.
    let quoted (etag: ETag) : string =
        let v = etag.ToString()

        if v.StartsWith '"' || v.StartsWith "W/" then
            v
        else
            "\"" + v + "\""

    let meta (key: string) (size: int64) (lastModified: DateTimeOffset) (etag: ETag) : ObjectMeta =
        { Key = key
          Size = size
          LastModified = toUtcSeconds lastModified
          ETag = quoted etag }

    let rec chain (e: exn) : exn list =
        if isNull e then
            []
        else
            match e with
            | :? AggregateException as a when a.InnerExceptions.Count >= 1 -> e :: chain a.InnerExceptions.[0]
            | _ -> e :: chain e.InnerException

    let isNetwork (e: exn) =
        match e with
        | :? HttpRequestException
        | :? IOException
        | :? SocketException
        | :? TimeoutException
        | :? OperationCanceledException -> true
        | _ -> false

    /// The normalised exception for a failure `e` of `op` on `key` (SPEC §2.2).
    let normalise (ct: CancellationToken) (op: Operation) (key: string) (e: exn) : exn =
        match e with
        | :? ObjectStoreException -> e
        | :? OperationCanceledException when ct.IsCancellationRequested -> e
        | _ when ct.IsCancellationRequested -> OperationCanceledException("the Azure request was cancelled", e, ct)
        | _ ->
            let failure =
                chain e
                |> List.tryPick (fun x ->
                    match x with
                    | :? RequestFailedException as r when r.Status <> 0 -> Some r
                    | _ -> None)

            let what =
                match op with
                | Reading -> "read"
                | Writing _ -> "put"
                | Deleting -> "delete"
                | Listing -> "list"

            match failure with
            | Some r ->
                let code = if isNull r.ErrorCode then "" else r.ErrorCode

                let describe =
                    $"Azure {what} of '{container.Name}/{fullKey key}' failed with {r.Status} {code}: {r.Message}"

                match op, r.Status with
                | Writing CreateIfAbsent, (409 | 412) when code <> "ContainerNotFound" ->
                    ObjectStoreException.AlreadyExists key :> exn
                | Writing(IfMatch etag), 412 ->
                    ObjectStoreException.PreconditionFailed(key, $"the current etag is not {etag}")
                | _, 404 when code = "ContainerNotFound" ->
                    ObjectStoreException(
                        ObjectStoreErrorKind.NotFound,
                        key,
                        $"Azure container '{container.Name}' does not exist",
                        e
                    )
                | Writing(IfMatch _), 404 -> ObjectStoreException.PreconditionFailed(key, "the object does not exist")
                | _, 404 -> ObjectStoreException.NotFound(key, e)
                | _, 501 -> ObjectStoreException(ObjectStoreErrorKind.NotSupported, key, describe, e)
                | _ -> ObjectStoreException(ObjectStoreErrorKind.Transient, key, describe, e)
            | None when chain e |> List.exists (fun x -> isNetwork x || x :? RequestFailedException) ->
                ObjectStoreException.Transient(key, $"Azure {what}", e)
            | None -> e

    /// Creates the container once (CreateIfNotExists); a failed attempt is retried next time.
    let ensureContainer (ct: CancellationToken) : Task =
        let current =
            lock gate (fun () ->
                if isNull ensured || ensured.IsFaulted || ensured.IsCanceled then
                    ensured <-
                        task {
                            let! _ =
                                container.CreateIfNotExistsAsync(
                                    PublicAccessType.None,
                                    null,
                                    null,
                                    CancellationToken.None
                                )

                            return ()
                        }
                        :> Task

                ensured)

        if current.IsCompletedSuccessfully then
            Task.CompletedTask
        else
            current.WaitAsync ct

    let guard (ct: CancellationToken) (op: Operation) (key: string) (f: unit -> Task<'a>) : Task<'a> =
        task {
            try
                ct.ThrowIfCancellationRequested()
                do! ensureContainer ct
                return! f ()
            with e ->
                return raise (normalise ct op key e)
        }

    let checkAttributes (attributes: IReadOnlyDictionary<string, string>) =
        let identifier (s: string) =
            not (String.IsNullOrEmpty s)
            && (Char.IsAsciiLetter s.[0] || s.[0] = '_')
            && s |> Seq.forall (fun c -> Char.IsAsciiLetterOrDigit c || c = '_')

        if ObjectStore.hasAttributes attributes then
            for kv in attributes do
                if not (identifier kv.Key) then
                    invalidArg "attributes" $"Azure metadata name '{kv.Key}' must be a C# identifier"

                if isNull kv.Value || not (kv.Value |> Seq.forall (fun c -> c >= ' ' && c <= '~')) then
                    invalidArg "attributes" $"Azure metadata value of '{kv.Key}' must be printable ASCII"

    let blob (key: string) = container.GetBlobClient(fullKey key)

    let head (key: string) (ct: CancellationToken) : Task<HeadResult> =
        guard ct Reading key (fun () ->
            task {
                let! r = (blob key).GetPropertiesAsync(null, ct)
                let p = r.Value
                let attrs = Dictionary<string, string>(StringComparer.Ordinal)

                if not (isNull p.Metadata) then
                    for kv in p.Metadata do
                        attrs.[kv.Key] <- kv.Value

                return
                    { Meta = meta key p.ContentLength p.LastModified p.ETag
                      Attributes = ReadOnlyDictionary<string, string>(attrs) }
            })

    /// A store on the container (and below the prefix) of `config`, owning its SDK client.
    new(config: AzureBlobStoreConfig) =
        AzureBlobStoreConfig.validate config

        AzureBlobObjectStore(
            AzureBlobStoreConfig.createContainerClient config,
            AzureBlobStoreConfig.rootOf config,
            config.ListPageSize
        )

    /// A store on an existing container client (below `prefix` when given).
    new(container: BlobContainerClient, prefix: string option) =
        if isNull container then
            nullArg "container"

        let config =
            { AzureBlobStoreConfig.ofConnectionString "" container.Name with
                Prefix = prefix }

        AzureBlobObjectStore(container, AzureBlobStoreConfig.rootOf config, None)

    /// A store for "az://container[/prefix]" configured from the process environment (see
    /// `AzureBlobStoreConfig.ofUrl`).
    static member FromUrl(url: string) : AzureBlobObjectStore =
        AzureBlobObjectStore(AzureBlobStoreConfig.ofUrl Environment.GetEnvironmentVariable url)

    /// A store for "az://container[/prefix]" configured from the variables `getEnv` returns (see
    /// `AzureBlobStoreConfig.ofUrl`).
    static member FromUrl(url: string, getEnv: Func<string, string>) : AzureBlobObjectStore =
        if isNull getEnv then
            nullArg "getEnv"

        AzureBlobObjectStore(AzureBlobStoreConfig.ofUrl getEnv.Invoke url)

    /// The container client the store sends its requests with.
    member _.Container: BlobContainerClient = container

    /// The name prefix inside the container ("" or ending in '/').
    member _.Root: string = root

    interface IObjectStore with
        member _.PutAsync(key, data, mode, attributes, ct) =
            ObjectKey.validate key
            ObjectStore.validateMode mode
            checkAttributes attributes

            guard ct (Writing mode) key (fun () ->
                task {
                    let options = BlobUploadOptions()

                    match mode with
                    | CreateIfAbsent -> options.Conditions <- BlobRequestConditions(IfNoneMatch = Nullable ETag.All)
                    | IfMatch etag -> options.Conditions <- BlobRequestConditions(IfMatch = Nullable(ETag etag))
                    | Overwrite -> ()

                    if ObjectStore.hasAttributes attributes then
                        options.Metadata <- Dictionary<string, string>(attributes)

                    let! r = (blob key).UploadAsync(BinaryData data, options, ct)
                    return { ETag = quoted r.Value.ETag }
                })

        member _.GetAsync(key, ct) =
            ObjectKey.validate key

            guard ct Reading key (fun () ->
                task {
                    let! r = (blob key).DownloadContentAsync(BlobDownloadOptions(), ct)
                    let data = r.Value.Content.ToArray()
                    let d = r.Value.Details

                    return
                        { Data = data
                          Meta = meta key (int64 data.Length) d.LastModified d.ETag }
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
                        let options =
                            BlobDownloadOptions(Range = HttpRange(start, Nullable(endExclusive - start)))

                        try
                            let! r = (blob key).DownloadContentAsync(options, ct)
                            return r.Value.Content.ToArray()
                        with :? RequestFailedException as e when e.Status = 416 ->
                            return Array.empty<byte> // start at or past the end
                    })

        member _.HeadAsync(key, ct) =
            ObjectKey.validate key
            head key ct

        member _.ListAsync(prefix, ct) =
            ObjectKey.validatePrefix prefix

            guard ct Listing prefix (fun () ->
                task {
                    let found = ResizeArray<ObjectMeta>()
                    let options = GetBlobsOptions(Prefix = root + prefix)

                    let pages =
                        container
                            .GetBlobsAsync(options, ct)
                            .AsPages(null, Option.toNullable pageSize)
                            .GetAsyncEnumerator(ct)

                    let mutable more = true

                    while more do
                        let! next = pages.MoveNextAsync()
                        more <- next

                        if next then
                            for item in pages.Current.Values do
                                if item.Name.StartsWith(root, StringComparison.Ordinal) then
                                    let key = item.Name.Substring root.Length

                                    if ObjectKey.isValid key then
                                        let p = item.Properties
                                        let size = p.ContentLength.GetValueOrDefault 0L
                                        let modified = p.LastModified.GetValueOrDefault DateTimeOffset.UnixEpoch
                                        found.Add(meta key size modified (p.ETag.GetValueOrDefault ETag.All))

                    do! pages.DisposeAsync()
                    found.Sort(fun a b -> String.CompareOrdinal(a.Key, b.Key))
                    return found :> IReadOnlyList<ObjectMeta>
                })

        member _.DeleteAsync(key, ct) =
            ObjectKey.validate key

            guard ct Deleting key (fun () ->
                task {
                    let! _ = (blob key).DeleteIfExistsAsync(DeleteSnapshotsOption.IncludeSnapshots, null, ct)
                    return ()
                })
            :> Task

        member _.Describe = $"az://{container.Name}/{root}"
