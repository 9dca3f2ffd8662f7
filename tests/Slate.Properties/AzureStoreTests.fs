/// The Azure Blob object store against Azurite: the shared conformance suite plus Azure-specific
/// checks (container creation, paging, metadata, error normalisation against a canned server,
/// FromUrl).
module Slate.Properties.AzureStoreTests

open System
open System.Collections.Generic
open System.Threading
open System.Threading.Tasks
open Azure.Storage.Blobs
open Expecto
open Slate.Engine
open Slate.ObjectStores.Azure
open Slate.Properties.Emulators
open Slate.Properties.CloudStores

let private ct = CancellationToken.None

let private bytesOf (s: string) : byte[] = Text.Encoding.UTF8.GetBytes s

let private configFor = azureConfig
let private freshStore = freshAzure

let private expectKind (kind: ObjectStoreErrorKind) (what: string) (f: unit -> Task) : Task<ObjectStoreException> =
    task {
        let! outcome =
            task {
                try
                    do! f ()
                    return None
                with :? ObjectStoreException as e ->
                    return Some e
            }

        match outcome with
        | None -> return failtestf "%s: expected %A but the call succeeded" what kind
        | Some e ->
            Expect.equal e.Kind kind $"{what}: error kind ({e.Message})"
            return e
    }

let private put (s: IObjectStore) key data mode =
    s.PutAsync(key, ReadOnlyMemory(data: byte[]), mode, null, ct)

let private conformanceSuite =
    ObjectStoreTests.conformance "Azure (Azurite) conformance" (fun () -> freshStore () :> IObjectStore)

type private Call =
    | PutCreate
    | PutIfMatch
    | PutOverwrite
    | GetWhole
    | GetPart
    | HeadCall
    | ListCall
    | DeleteCall

let private invoke (s: IObjectStore) (call: Call) : Task =
    match call with
    | PutCreate -> put s "k/1" (bytesOf "x") CreateIfAbsent :> Task
    | PutIfMatch -> put s "k/1" (bytesOf "x") (IfMatch "\"0x8D0000000000001\"") :> Task
    | PutOverwrite -> put s "k/1" (bytesOf "x") Overwrite :> Task
    | GetWhole -> s.GetAsync("k/1", ct) :> Task
    | GetPart -> s.GetRangeAsync("k/1", 0L, 10L, ct) :> Task
    | HeadCall -> s.HeadAsync("k/1", ct) :> Task
    | ListCall -> s.ListAsync("k/", ct) :> Task
    | DeleteCall -> s.DeleteAsync("k/1", ct)

/// A canned Blob service: container creation succeeds, every blob request gets `status`/`code`.
/// Returns the server, a counter of blob requests, and a store on it.
let private fakeStore (status: int) (code: string) : FakeServer * (unit -> int) * AzureBlobObjectStore =
    let blobRequests = ref 0

    let server =
        new FakeServer(fun ctx ->
            if
                ctx.Request.Url.Query.Contains "restype=container"
                && ctx.Request.HttpMethod = "PUT"
            then
                answer ctx 201 [ "ETag", "\"0x1\""; "Last-Modified", DateTime.UtcNow.ToString "R" ] ""
            else
                Interlocked.Increment &blobRequests.contents |> ignore

                let headers = if code = "" then [] else [ "x-ms-error-code", code ]

                let body =
                    if code = "" then
                        ""
                    else
                        $"<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>canned {code}</Message></Error>"

                answer ctx status headers body)

    let store =
        AzureBlobObjectStore(
            { AzureBlobStoreConfig.ofConnectionString "" "fake" with
                ConnectionString = None
                AccountName = Some azuriteAccount
                AccountKey = Some azuriteKey
                ServiceUri = Some $"{server.Endpoint}/{azuriteAccount}" }
        )

    server, (fun () -> blobRequests.Value), store

/// (call, status, error code, expected kind): the normalisation table of SPEC §2.2.
let private normalisationCases =
    [ PutCreate, 409, "BlobAlreadyExists", ObjectStoreErrorKind.AlreadyExists
      PutCreate, 412, "ConditionNotMet", ObjectStoreErrorKind.AlreadyExists
      PutIfMatch, 412, "ConditionNotMet", ObjectStoreErrorKind.PreconditionFailed
      PutIfMatch, 404, "BlobNotFound", ObjectStoreErrorKind.PreconditionFailed
      PutCreate, 503, "ServerBusy", ObjectStoreErrorKind.Transient
      PutIfMatch, 500, "InternalError", ObjectStoreErrorKind.Transient
      PutOverwrite, 503, "ServerBusy", ObjectStoreErrorKind.Transient
      PutCreate, 404, "ContainerNotFound", ObjectStoreErrorKind.NotFound
      PutCreate, 501, "NotImplemented", ObjectStoreErrorKind.NotSupported
      GetWhole, 404, "BlobNotFound", ObjectStoreErrorKind.NotFound
      GetWhole, 404, "ContainerNotFound", ObjectStoreErrorKind.NotFound
      GetWhole, 500, "InternalError", ObjectStoreErrorKind.Transient
      GetWhole, 503, "ServerBusy", ObjectStoreErrorKind.Transient
      GetWhole, 403, "AuthenticationFailed", ObjectStoreErrorKind.Transient
      GetPart, 404, "BlobNotFound", ObjectStoreErrorKind.NotFound
      GetPart, 503, "ServerBusy", ObjectStoreErrorKind.Transient
      HeadCall, 404, "BlobNotFound", ObjectStoreErrorKind.NotFound
      HeadCall, 500, "", ObjectStoreErrorKind.Transient
      ListCall, 503, "ServerBusy", ObjectStoreErrorKind.Transient
      DeleteCall, 500, "InternalError", ObjectStoreErrorKind.Transient ]

let private normalisationTests =
    testList
        "error normalisation (canned server)"
        [ testCaseTask "status codes map onto the SPEC §2.2 kinds, each after exactly one request"
          <| fun () ->
              task {
                  for call, status, code, kind in normalisationCases do
                      let server, requests, store = fakeStore status code
                      use _server = server
                      let what = $"{call} answered {status} {code}"
                      let! _ = expectKind kind what (fun () -> invoke store call)
                      Expect.equal (requests ()) 1 $"{what}: sent once (no SDK retries)"
              }

          testCaseTask "a range starting at or past the end (416) is empty"
          <| fun () ->
              task {
                  let server, _, store = fakeStore 416 "InvalidRange"
                  use _server = server
                  let! r = (store :> IObjectStore).GetRangeAsync("k/1", 100L, 200L, ct)
                  Expect.isEmpty r "empty"
              }

          testCaseTask "refused connections are Transient"
          <| fun () ->
              task {
                  let store =
                      AzureBlobObjectStore(
                          { AzureBlobStoreConfig.ofConnectionString "" "c" with
                              ConnectionString = None
                              AccountName = Some azuriteAccount
                              AccountKey = Some azuriteKey
                              ServiceUri = Some $"http://127.0.0.1:{closedPort ()}/{azuriteAccount}" }
                      )

                  for call in [ PutCreate; PutIfMatch; GetWhole; GetPart; HeadCall; ListCall; DeleteCall ] do
                      let! _ = expectKind ObjectStoreErrorKind.Transient $"{call}" (fun () -> invoke store call)
                      ()
              }

          testCaseTask "a request timeout is Transient; cancelling a pending request is cancellation"
          <| fun () ->
              task {
                  use server =
                      new FakeServer(fun ctx ->
                          if ctx.Request.Url.Query.Contains "restype=container" then
                              answer ctx 201 [ "ETag", "\"0x1\"" ] ""
                          else
                              Thread.Sleep 3000
                              answer ctx 200 [] "")

                  let options = BlobClientOptions()
                  options.Retry.MaxRetries <- 0
                  options.Retry.NetworkTimeout <- TimeSpan.FromMilliseconds 300.0

                  let client =
                      BlobContainerClient(
                          Uri $"{server.Endpoint}/{azuriteAccount}/c",
                          Azure.Storage.StorageSharedKeyCredential(azuriteAccount, azuriteKey),
                          options
                      )

                  let store = AzureBlobObjectStore(client, None) :> IObjectStore
                  let! _ = expectKind ObjectStoreErrorKind.Transient "timed-out get" (fun () -> invoke store GetWhole)
                  use cts = new CancellationTokenSource(TimeSpan.FromMilliseconds 100.0)

                  let! cancelled =
                      task {
                          try
                              let! _ = store.GetAsync("k/1", cts.Token)
                              return false
                          with :? OperationCanceledException ->
                              return true
                      }

                  Expect.isTrue cancelled "OperationCanceledException"
              } ]

/// Writes `keys` through `s` with 16 requests in flight.
let private putAll (s: IObjectStore) (keys: string seq) : Task =
    Parallel.ForEachAsync(
        keys,
        ParallelOptions(MaxDegreeOfParallelism = 16),
        fun key token -> ValueTask(s.PutAsync(key, ReadOnlyMemory(bytesOf key), CreateIfAbsent, null, token) :> Task)
    )

let private listKeys (s: IObjectStore) (prefix: string) : Task<string list> =
    task {
        let! l = s.ListAsync(prefix, ct)
        return l |> Seq.map (fun m -> m.Key) |> List.ofSeq
    }

let private ordinalSort (keys: string seq) =
    keys |> Seq.sortWith (fun a b -> String.CompareOrdinal(a, b)) |> List.ofSeq

let private emulatorTests =
    testList
        "Azurite"
        [ testCaseTask "the container is created on first use"
          <| fun () ->
              task {
                  let e = require azurite
                  let name = newContainerName ()
                  let s = AzureBlobObjectStore(configFor e name) :> IObjectStore
                  let! empty = listKeys s ""
                  Expect.isEmpty empty "a new container lists nothing"
                  let! _ = put s "a" (bytesOf "1") CreateIfAbsent
                  let service = BlobServiceClient(azuriteConnectionString e)
                  let! exists = service.GetBlobContainerClient(name).ExistsAsync(ct)
                  Expect.isTrue exists.Value "created"
                  // a second store on the existing container works as well
                  let again = AzureBlobObjectStore(configFor e name) :> IObjectStore
                  let! g = again.GetAsync("a", ct)
                  Expect.equal g.Data (bytesOf "1") "read back"
              }

          testCaseTask "list pages with a small page size"
          <| fun () ->
              task {
                  let e = require azurite

                  let store =
                      AzureBlobObjectStore(
                          { configFor e sharedContainer.Value with
                              Prefix = Some $"t/{Guid.NewGuid():N}"
                              ListPageSize = Some 7 }
                      )

                  let s = store :> IObjectStore
                  let keys = [ for i in 0..44 -> $"p/{(i * 37) % 45:D3}/x" ] @ [ "q/1"; "p0" ]
                  do! putAll s keys
                  let! all = listKeys s ""
                  Expect.equal all (ordinalSort keys) "every key once, sorted"
                  let! p1 = listKeys s "p/01"
                  Expect.equal p1 [ for i in 10..19 -> $"p/{i:D3}/x" ] "prefix p/01"
              }

          testCaseTask "user attributes are blob metadata, returned by head"
          <| fun () ->
              task {
                  let store = freshStore ()
                  let s = store :> IObjectStore
                  let id = (Slate.Model.Ulid.create 1234567L 5us 77UL).ToString()
                  let attrs = Dictionary<string, string>(dict [ "slatedbputid", id ])
                  let! p = s.PutAsync("m/1", ReadOnlyMemory(bytesOf "x"), CreateIfAbsent, attrs, ct)
                  let! h = s.HeadAsync("m/1", ct)
                  Expect.equal h.Attributes.["slatedbputid"] id "put id"
                  Expect.equal h.Meta.ETag p.ETag "etag"
                  let! raw = store.Container.GetBlobClient(store.Root + "m/1").GetPropertiesAsync(null, ct)
                  Expect.equal raw.Value.Metadata.["slatedbputid"] id "stored as x-ms-meta-slatedbputid"
                  let! _ = s.PutAsync("m/1", ReadOnlyMemory(bytesOf "y"), IfMatch p.ETag, null, ct)
                  let! h2 = s.HeadAsync("m/1", ct)
                  Expect.equal h2.Attributes.Count 0 "a put without attributes drops them"

                  Expect.throwsT<ArgumentException>
                      (fun () ->
                          s.PutAsync(
                              "m/2",
                              ReadOnlyMemory [||],
                              CreateIfAbsent,
                              Dictionary(dict [ "bad-name", "v" ]),
                              ct
                          )
                          |> ignore)
                      "metadata names are identifiers"
              }

          testCaseTask "the prefix maps keys into the container"
          <| fun () ->
              task {
                  let e = require azurite
                  let name = newContainerName ()

                  let store =
                      AzureBlobObjectStore(
                          { configFor e name with
                              Prefix = Some "/a/b/" }
                      )

                  let whole = AzureBlobObjectStore(configFor e name) :> IObjectStore
                  let s = store :> IObjectStore
                  let! _ = put s "x/y" (bytesOf "1") CreateIfAbsent
                  let! _ = put whole "a/bc" (bytesOf "2") CreateIfAbsent
                  Expect.equal store.Root "a/b/" "normalised root"
                  Expect.equal s.Describe $"az://{name}/a/b/" "describe"
                  let! inside = listKeys s ""
                  Expect.equal inside [ "x/y" ] "only the prefix's objects"
                  let! outside = listKeys whole ""
                  Expect.equal outside [ "a/b/x/y"; "a/bc" ] "stored below the prefix"
              }

          testCaseTask "FromUrl reads the connection string, or account, key and endpoint"
          <| fun () ->
              task {
                  let e = require azurite
                  let container = sharedContainer.Value
                  let prefix = $"url/{Guid.NewGuid():N}"

                  let getEnv (pairs: (string * string) list) =
                      let d = dict pairs

                      Func<string, string>(fun n ->
                          match d.TryGetValue n with
                          | true, v -> v
                          | _ -> null)

                  let byString =
                      AzureBlobObjectStore.FromUrl(
                          $"az://{container}/{prefix}",
                          getEnv [ "AZURE_STORAGE_CONNECTION_STRING", azuriteConnectionString e ]
                      )
                      :> IObjectStore

                  let! p = put byString "k" (bytesOf "via url") CreateIfAbsent

                  let byKey =
                      AzureBlobObjectStore.FromUrl(
                          $"az://{container}/{prefix}/",
                          getEnv
                              [ "AZURE_STORAGE_ACCOUNT", azuriteAccount
                                "AZURE_STORAGE_KEY", azuriteKey
                                "AZURE_STORAGE_BLOB_ENDPOINT", azuriteServiceUri e ]
                      )
                      :> IObjectStore

                  let! g = byKey.GetAsync("k", ct)
                  Expect.equal g.Data (bytesOf "via url") "same object through both"
                  Expect.equal g.Meta.ETag p.ETag "same etag"
                  let whole = AzureBlobObjectStore(configFor e container) :> IObjectStore
                  let! h = whole.HeadAsync($"{prefix}/k", ct)
                  Expect.equal h.Meta.ETag p.ETag "stored below the URL's prefix"
              } ]

let private configTests =
    testList
        "config"
        [ testCase "ofUrl parses az:// URLs and reads the standard environment"
          <| fun () ->
              let envOf (pairs: (string * string) list) =
                  let d = dict pairs

                  fun (n: string) ->
                      match d.TryGetValue n with
                      | true, v -> v
                      | _ -> null

              let c =
                  AzureBlobStoreConfig.ofUrl (envOf [ "AZURE_STORAGE_CONNECTION_STRING", "cs" ]) "az://box/a/b/"

              Expect.equal
                  c
                  (AzureBlobStoreConfig.ofConnectionString "cs" "box"
                   |> fun c -> { c with Prefix = Some "a/b" })
                  "connection string"

              let k =
                  AzureBlobStoreConfig.ofUrl
                      (envOf [ "AZURE_STORAGE_ACCOUNT_NAME", "acct"; "AZURE_STORAGE_ACCOUNT_KEY", "key" ])
                      "azure://box"

              Expect.equal (k.AccountName, k.AccountKey, k.Prefix) (Some "acct", Some "key", None) "account + key"

              for bad in [ "s3://b"; "az://"; "az:///p"; "box" ] do
                  Expect.throwsT<ArgumentException> (fun () -> AzureBlobStoreConfig.ofUrl (envOf []) bad |> ignore) bad

          testCase "invalid configurations are rejected up front"
          <| fun () ->
              let good = AzureBlobStoreConfig.ofConnectionString "cs" "box"

              for what, config in
                  [ "empty container", { good with Container = "" }
                    "no credentials", { good with ConnectionString = None }
                    "name without key",
                    { good with
                        ConnectionString = None
                        AccountName = Some "a" }
                    "key without name",
                    { good with
                        ConnectionString = None
                        AccountKey = Some "k" }
                    "page size 0", { good with ListPageSize = Some 0 }
                    "bad prefix", { good with Prefix = Some "a//b" } ] do
                  Expect.throwsT<ArgumentException> (fun () -> AzureBlobStoreConfig.validate config) what ]

let allTests =
    testList "Azure" [ conformanceSuite; emulatorTests; normalisationTests; configTests ]
