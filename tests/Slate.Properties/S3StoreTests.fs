/// The S3 object store against moto_server: the shared conformance suite plus S3-specific checks
/// (paging, user metadata, error normalisation against a canned server, FromUrl).
module Slate.Properties.S3StoreTests

open System
open System.Collections.Generic
open System.Threading
open System.Threading.Tasks
open Amazon.Runtime
open Amazon.S3
open Amazon.S3.Model
open Expecto
open Slate.Engine
open Slate.ObjectStores.S3
open Slate.Properties.Emulators
open Slate.Properties.CloudStores

#nowarn "3536" // IAmazonS3 used as an ordinary interface type (see S3ObjectStore.fs)

let private ct = CancellationToken.None

let private bytesOf (s: string) : byte[] = Text.Encoding.UTF8.GetBytes s

let private testKeys = s3TestKeys
let private configFor = s3Config
let private newBucketName = newName
let private freshStore = freshS3

let private expectKind (kind: ObjectStoreErrorKind) (what: string) (f: unit -> Task<'a>) : Task<ObjectStoreException> =
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
        | None -> return failtestf "%s: expected %A but the call succeeded" what kind
        | Some e ->
            Expect.equal e.Kind kind $"{what}: error kind ({e.Message})"
            return e
    }

let private put (s: IObjectStore) key data mode =
    s.PutAsync(key, ReadOnlyMemory(data: byte[]), mode, null, ct)

let private conformanceSuite =
    ObjectStoreTests.conformance "S3 (moto) conformance" (fun () -> freshStore () :> IObjectStore)

/// A store with its own client on a canned server (no SDK retries, short timeout), and the server.
let private fakeStore (respond: Net.HttpListenerContext -> unit) : FakeServer * S3ObjectStore =
    let server = new FakeServer(respond)

    let store =
        new S3ObjectStore(
            { S3StoreConfig.create "fake-bucket" with
                ServiceUrl = Some server.Endpoint
                ForcePathStyle = true
                AccessKey = Some(fst testKeys)
                SecretKey = Some(snd testKeys) }
        )

    server, store

let private s3Error (code: string) =
    $"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>canned {code}</Message><RequestId>r1</RequestId></Error>"

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
    | PutIfMatch -> put s "k/1" (bytesOf "x") (IfMatch "\"abc\"") :> Task
    | PutOverwrite -> put s "k/1" (bytesOf "x") Overwrite :> Task
    | GetWhole -> s.GetAsync("k/1", ct) :> Task
    | GetPart -> s.GetRangeAsync("k/1", 0L, 10L, ct) :> Task
    | HeadCall -> s.HeadAsync("k/1", ct) :> Task
    | ListCall -> s.ListAsync("k/", ct) :> Task
    | DeleteCall -> s.DeleteAsync("k/1", ct)

/// (call, status, S3 error code, expected kind): the normalisation table of SPEC §2.2.
let private normalisationCases =
    [ PutCreate, 412, "PreconditionFailed", ObjectStoreErrorKind.AlreadyExists
      PutIfMatch, 412, "PreconditionFailed", ObjectStoreErrorKind.PreconditionFailed
      PutIfMatch, 404, "NoSuchKey", ObjectStoreErrorKind.PreconditionFailed
      PutCreate, 409, "ConditionalRequestConflict", ObjectStoreErrorKind.Transient
      PutIfMatch, 409, "ConditionalRequestConflict", ObjectStoreErrorKind.Transient
      PutCreate, 503, "SlowDown", ObjectStoreErrorKind.Transient
      PutIfMatch, 500, "InternalError", ObjectStoreErrorKind.Transient
      PutOverwrite, 503, "ServiceUnavailable", ObjectStoreErrorKind.Transient
      PutCreate, 501, "NotImplemented", ObjectStoreErrorKind.NotSupported
      PutCreate, 404, "NoSuchBucket", ObjectStoreErrorKind.NotFound
      GetWhole, 404, "NoSuchKey", ObjectStoreErrorKind.NotFound
      GetWhole, 500, "InternalError", ObjectStoreErrorKind.Transient
      GetWhole, 503, "SlowDown", ObjectStoreErrorKind.Transient
      GetWhole, 403, "AccessDenied", ObjectStoreErrorKind.Transient
      GetWhole, 400, "RequestTimeout", ObjectStoreErrorKind.Transient
      GetPart, 404, "NoSuchKey", ObjectStoreErrorKind.NotFound
      GetPart, 500, "InternalError", ObjectStoreErrorKind.Transient
      HeadCall, 404, "", ObjectStoreErrorKind.NotFound
      HeadCall, 503, "", ObjectStoreErrorKind.Transient
      ListCall, 503, "SlowDown", ObjectStoreErrorKind.Transient
      ListCall, 404, "NoSuchBucket", ObjectStoreErrorKind.NotFound
      DeleteCall, 500, "InternalError", ObjectStoreErrorKind.Transient ]

let private awaitKind (what: string) (kind: ObjectStoreErrorKind) (f: unit -> Task) : Task<ObjectStoreException> =
    expectKind kind what (fun () ->
        task {
            do! f ()
            return ()
        })

let private normalisationTests =
    testList
        "error normalisation (canned server)"
        [ testCaseTask "status codes map onto the SPEC §2.2 kinds, each after exactly one request"
          <| fun () ->
              task {
                  for call, status, code, kind in normalisationCases do
                      let body = if code = "" then "" else s3Error code
                      let server, store = fakeStore (fun ctx -> answer ctx status [] body)
                      use _server = server
                      use _store = store
                      let what = $"{call} answered {status} {code}"
                      let! _ = awaitKind what kind (fun () -> invoke store call)
                      Expect.equal server.Requests 1 $"{what}: sent once (no SDK retries)"
              }

          testCaseTask "a missing bucket is NotFound naming the bucket"
          <| fun () ->
              task {
                  let server, store =
                      fakeStore (fun ctx -> answer ctx 404 [] (s3Error "NoSuchBucket"))

                  use _server = server
                  use _store = store
                  let! e = awaitKind "list" ObjectStoreErrorKind.NotFound (fun () -> invoke store ListCall)
                  Expect.stringContains e.Message "fake-bucket" "names the bucket"
              }

          testCaseTask "a range starting at or past the end (416) is empty"
          <| fun () ->
              task {
                  let server, store =
                      fakeStore (fun ctx -> answer ctx 416 [] (s3Error "InvalidRange"))

                  use _server = server
                  use _store = store
                  let! r = (store :> IObjectStore).GetRangeAsync("k/1", 100L, 200L, ct)
                  Expect.isEmpty r "empty"
              }

          testCaseTask "refused connections are Transient"
          <| fun () ->
              task {
                  use store =
                      new S3ObjectStore(
                          { S3StoreConfig.create "b" with
                              ServiceUrl = Some $"http://127.0.0.1:{closedPort ()}"
                              ForcePathStyle = true
                              AccessKey = Some(fst testKeys)
                              SecretKey = Some(snd testKeys) }
                      )

                  for call in [ PutCreate; PutIfMatch; GetWhole; GetPart; HeadCall; ListCall; DeleteCall ] do
                      let! _ = awaitKind $"{call}" ObjectStoreErrorKind.Transient (fun () -> invoke store call)
                      ()
              }

          testCaseTask "a request timeout is Transient; cancelling a pending request is cancellation"
          <| fun () ->
              task {
                  use server =
                      new FakeServer(fun ctx ->
                          Thread.Sleep 3000
                          answer ctx 200 [] "")

                  let config =
                      AmazonS3Config(ServiceURL = server.Endpoint, ForcePathStyle = true, MaxErrorRetry = 0)

                  config.AuthenticationRegion <- "us-east-1"
                  config.Timeout <- Nullable(TimeSpan.FromMilliseconds 300.0)

                  use client =
                      new AmazonS3Client(BasicAWSCredentials(fst testKeys, snd testKeys), config)

                  let store = new S3ObjectStore(client, "b", None) :> IObjectStore
                  let! _ = awaitKind "timed-out get" ObjectStoreErrorKind.Transient (fun () -> invoke store GetWhole)
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
        "moto"
        [ testCaseTask "etags derive from the content: distinct writes differ, identical bytes repeat the etag"
          <| fun () ->
              task {
                  use store = freshStore ()
                  let s = store :> IObjectStore
                  let! first = put s "seq" (bytesOf "v00") CreateIfAbsent
                  let seen = HashSet<string>([ first.ETag ])
                  let mutable etag = first.ETag

                  for i in 1..10 do
                      let! r = put s "seq" (bytesOf $"v%02d{i}") (IfMatch etag)
                      Expect.isTrue (seen.Add r.ETag) $"etag of write {i} is new"
                      etag <- r.ETag

                  do! s.DeleteAsync("seq", ct)
                  let! again = put s "seq" (bytesOf "v00") CreateIfAbsent
                  Expect.equal again.ETag first.ETag "identical bytes, identical S3 ETag"
                  let! updated = put s "seq" (bytesOf "v99") (IfMatch first.ETag)
                  Expect.notEqual updated.ETag first.ETag "the repeated etag still guards the update"
              }

          testCaseTask "list pages through continuation tokens with a small page size"
          <| fun () ->
              task {
                  let e = require moto
                  let prefix = $"t/{Guid.NewGuid():N}"

                  use store =
                      new S3ObjectStore(
                          { configFor e sharedBucket.Value with
                              Prefix = Some prefix
                              ListPageSize = Some 7 }
                      )

                  let s = store :> IObjectStore
                  let keys = [ for i in 0..44 -> $"p/{(i * 37) % 45:D3}/x" ] @ [ "q/1"; "p0" ]
                  do! putAll s keys
                  let! all = listKeys s ""
                  Expect.equal all (ordinalSort keys) "every key once, sorted"
                  let! p1 = listKeys s "p/01"
                  Expect.equal p1 [ for i in 10..19 -> $"p/{i:D3}/x" ] "prefix p/01"
                  // the server really pages at this size
                  let! page =
                      store.Client.ListObjectsV2Async(
                          ListObjectsV2Request(BucketName = store.Bucket, Prefix = store.Root, MaxKeys = 7),
                          ct
                      )

                  Expect.isTrue (page.IsTruncated.GetValueOrDefault false) "a 7-key page is truncated"
              }

          testCaseTask "list returns more than 1000 keys at the server's default page size"
          <| fun () ->
              task {
                  use store = freshStore ()
                  let s = store :> IObjectStore
                  let keys = [ for i in 0..1049 -> $"many/{i:D5}" ]
                  do! putAll s keys
                  let! all = listKeys s "many/"
                  Expect.equal all keys "1050 keys in order"
              }

          testCaseTask "user attributes are x-amz-meta-* metadata, returned by head"
          <| fun () ->
              task {
                  use store = freshStore ()
                  let s = store :> IObjectStore
                  let id = (Slate.Model.Ulid.create 1234567L 5us 77UL).ToString()

                  let attrs =
                      Dictionary<string, string>(dict [ "slatedbputid", id; "Other-Name", "v" ])

                  let! p = s.PutAsync("m/1", ReadOnlyMemory(bytesOf "x"), CreateIfAbsent, attrs, ct)
                  let! h = s.HeadAsync("m/1", ct)
                  Expect.equal h.Attributes.["slatedbputid"] id "put id"
                  Expect.equal h.Attributes.["other-name"] "v" "S3 lower-cases names"
                  Expect.equal h.Meta.ETag p.ETag "etag"

                  let! raw =
                      store.Client.GetObjectMetadataAsync(
                          GetObjectMetadataRequest(BucketName = store.Bucket, Key = store.Root + "m/1"),
                          ct
                      )

                  Expect.equal raw.Metadata.["x-amz-meta-slatedbputid"] id "stored as x-amz-meta-slatedbputid"
                  let! _ = s.PutAsync("m/1", ReadOnlyMemory(bytesOf "y"), IfMatch p.ETag, null, ct)
                  let! h2 = s.HeadAsync("m/1", ct)
                  Expect.equal h2.Attributes.Count 0 "a put without attributes drops them"

                  Expect.throwsT<ArgumentException>
                      (fun () ->
                          s.PutAsync(
                              "m/2",
                              ReadOnlyMemory [||],
                              CreateIfAbsent,
                              Dictionary(dict [ "k", "\u00e9" ]),
                              ct
                          )
                          |> ignore)
                      "non-ASCII value"
              }

          testCaseTask "the prefix maps keys into the bucket; foreign and marker keys stay out"
          <| fun () ->
              task {
                  let e = require moto
                  let bucket = createBucket e

                  use store =
                      new S3ObjectStore(
                          { configFor e bucket with
                              Prefix = Some "/a/b/" }
                      )

                  use whole = new S3ObjectStore(configFor e bucket)
                  let s = store :> IObjectStore
                  let! _ = put s "x/y" (bytesOf "1") CreateIfAbsent
                  let! _ = put (whole :> IObjectStore) "a/bc" (bytesOf "2") CreateIfAbsent

                  let! _ =
                      whole.Client.PutObjectAsync(
                          PutObjectRequest(BucketName = bucket, Key = "a/b/dir/", ContentBody = ""),
                          ct
                      )

                  Expect.equal store.Root "a/b/" "normalised root"
                  Expect.equal (s.Describe) $"s3://{bucket}/a/b/" "describe"
                  let! inside = listKeys s ""
                  Expect.equal inside [ "x/y" ] "only the prefix's objects; the 'dir/' marker is skipped"
                  let! outside = listKeys (whole :> IObjectStore) ""
                  Expect.equal outside [ "a/b/x/y"; "a/bc" ] "stored below the prefix"
              }

          testCaseTask "a bucket that does not exist is NotFound"
          <| fun () ->
              task {
                  let e = require moto
                  use store = new S3ObjectStore(configFor e (newBucketName ()))
                  let s = store :> IObjectStore

                  for call in [ PutCreate; GetWhole; ListCall ] do
                      let! err = awaitKind $"{call}" ObjectStoreErrorKind.NotFound (fun () -> invoke s call)
                      Expect.stringContains err.Message "does not exist" $"{call} names the bucket"
              }

          testCaseTask "FromUrl takes the endpoint, region and keys from the environment"
          <| fun () ->
              task {
                  let e = require moto
                  let bucket = sharedBucket.Value
                  let prefix = $"url/{Guid.NewGuid():N}"

                  let env =
                      dict
                          [ "AWS_ENDPOINT_URL", $"http://127.0.0.1:{closedPort ()}"
                            "AWS_ENDPOINT_URL_S3", e.Endpoint
                            "AWS_REGION", "us-east-1"
                            "AWS_ACCESS_KEY_ID", fst testKeys
                            "AWS_SECRET_ACCESS_KEY", snd testKeys ]

                  let getEnv =
                      Func<string, string>(fun n ->
                          match env.TryGetValue n with
                          | true, v -> v
                          | _ -> null)

                  use store = S3ObjectStore.FromUrl($"s3://{bucket}/{prefix}/", getEnv)
                  let! p = put store "k" (bytesOf "via url") CreateIfAbsent
                  use check = new S3ObjectStore(configFor e bucket)
                  let! g = (check :> IObjectStore).GetAsync($"{prefix}/k", ct)
                  Expect.equal g.Data (bytesOf "via url") "stored below the URL's prefix"
                  Expect.equal g.Meta.ETag p.ETag "same object"
              } ]

let private configTests =
    testList
        "config"
        [ testCase "ofUrl parses s3:// URLs and reads the standard environment"
          <| fun () ->
              let envOf (pairs: (string * string) list) =
                  let d = dict pairs

                  fun (n: string) ->
                      match d.TryGetValue n with
                      | true, v -> v
                      | _ -> null

              let plain = S3StoreConfig.ofUrl (envOf []) "s3://bucket"
              Expect.equal plain (S3StoreConfig.create "bucket") "bare bucket, all defaults"
              let nested = S3StoreConfig.ofUrl (envOf []) "S3://bucket/a/b/"
              Expect.equal nested.Prefix (Some "a/b") "prefix"

              let custom =
                  S3StoreConfig.ofUrl
                      (envOf
                          [ "AWS_ENDPOINT_URL", "http://127.0.0.1:1"
                            "AWS_DEFAULT_REGION", "eu-west-3"
                            "AWS_ACCESS_KEY_ID", "id"
                            "AWS_SECRET_ACCESS_KEY", "secret" ])
                      "s3://b/p"

              Expect.equal custom.ServiceUrl (Some "http://127.0.0.1:1") "endpoint"
              Expect.isTrue custom.ForcePathStyle "path style with a custom endpoint"
              Expect.equal custom.Region (Some "eu-west-3") "region fallback"
              Expect.equal (custom.AccessKey, custom.SecretKey) (Some "id", Some "secret") "keys"

              let session =
                  S3StoreConfig.ofUrl
                      (envOf
                          [ "AWS_REGION", "us-west-2"
                            "AWS_DEFAULT_REGION", "eu-west-3"
                            "AWS_ACCESS_KEY_ID", "id"
                            "AWS_SECRET_ACCESS_KEY", "secret"
                            "AWS_SESSION_TOKEN", "token" ])
                      "s3://b"

              Expect.equal session.Region (Some "us-west-2") "AWS_REGION first"
              Expect.equal session.AccessKey None "session credentials are left to the SDK chain"
              Expect.isFalse session.ForcePathStyle "no custom endpoint"

              for bad in [ "http://b"; "s3://"; "s3:///p"; "b" ] do
                  Expect.throwsT<ArgumentException> (fun () -> S3StoreConfig.ofUrl (envOf []) bad |> ignore) bad

          testCase "invalid configurations are rejected up front"
          <| fun () ->
              let good = S3StoreConfig.create "b"

              for what, config in
                  [ "empty bucket", S3StoreConfig.create ""
                    "key without secret", { good with AccessKey = Some "a" }
                    "secret without key", { good with SecretKey = Some "s" }
                    "page size 0", { good with ListPageSize = Some 0 }
                    "page size 1001", { good with ListPageSize = Some 1001 }
                    "bad prefix", { good with Prefix = Some "a//b" }
                    "dot prefix", { good with Prefix = Some "a/../b" } ] do
                  Expect.throwsT<ArgumentException> (fun () -> S3StoreConfig.validate config) what

              Expect.equal (S3StoreConfig.rootOf { good with Prefix = Some "" }) "" "empty prefix"
              Expect.equal (S3StoreConfig.rootOf { good with Prefix = Some "x/" }) "x/" "trailing slash" ]

let allTests =
    testList "S3" [ conformanceSuite; emulatorTests; normalisationTests; configTests ]
