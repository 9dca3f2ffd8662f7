/// The engine on the real cloud SDKs against the local emulators (issue 6): the model-based test,
/// crash recovery and transient faults behind the retrying store on S3 (moto) and Azure Blob
/// (Azurite), with reduced counts, and SlateDB 0.12.1 reading and continuing a database Slate wrote to a moto bucket
/// (object_store takes its S3 settings from AWS_ENDPOINT, AWS_ALLOW_HTTP and the usual keys).
module Slate.Properties.CloudEngineTests

open System
open System.Text
open System.Text.Json
open Expecto
open Slate.Model
open Slate.Engine
open Slate.ObjectStores.S3
open Slate.Properties.Emulators
open Slate.Properties.CloudStores
open Slate.Properties.EngineTests.Eng
open Slate.Properties.SlateDbNode

let private seeds () =
    match Environment.GetEnvironmentVariable "SLATE_CLOUD_CRASH_SEEDS" with
    | null
    | "" -> 12
    | n -> int n

let private modelCases () =
    match Environment.GetEnvironmentVariable "SLATE_CLOUD_MODEL_CASES" with
    | null
    | "" -> 8
    | n -> int n

let private crashOn (name: string) (fresh: unit -> IObjectStore) =
    testList
        name
        [ EngineTests.modelTestOn (modelCases ()) "random commands equal a sorted-map model (reduced cases)" fresh
          test "crash recovery at a random request keeps every acknowledged batch (reduced seeds)" {
              let runs = [ for seed in 1 .. seeds () -> CrashTests.crashOnce fresh seed ]
              let crashed = runs |> List.filter (fun (c, _, _) -> c) |> List.length
              let acked = runs |> List.filter (fun (c, a, _) -> c && a) |> List.length
              printfn "%s crash: %d runs, %d crashed, %d after an acknowledgement" name runs.Length crashed acked
              Expect.isGreaterThan (crashed * 10) (runs.Length * 6) "most runs crash"
              Expect.isGreaterThan acked 0 "some crash after an acknowledgement"
          }

          test "transient faults and lost responses behind the retrying store change nothing (reduced seeds)" {
              let faults =
                  [ for seed in 1 .. max 2 (seeds () / 3) -> CrashTests.transientOnce fresh seed ]
                  |> List.sum

              Expect.isGreaterThan faults 0L "faults were injected"
          } ]

/// Writes a database into `store` at `dbPath`: puts, deletes, several L0 SSTs and a WAL-only tail.
/// Returns the visible content (key → value).
let private slateWrites (store: IObjectStore) (dbPath: string) : Map<string, string> =
    let db = openDb store dbPath { options with L0SstSizeBytes = 4096L }
    let mutable model = Map.empty

    for round in 0..3 do
        for i in 0..199 do
            let k = sprintf "k%04d" ((i * 37 + round * 11) % 300)

            if (i + round) % 9 = 0 then
                del db k |> ignore
                model <- Map.remove k model
            else
                let v = sprintf "r%d-%d-%s" round i (String('x', i % 40))
                put db k v |> ignore
                model <- Map.add k v model

        if round < 3 then
            awaitU (db.FlushAsync(FlushKind.MemTable, ct))
        else
            awaitU (db.FlushAsync(FlushKind.Wal, ct))

    let l0 = (List.last (manifests store dbPath)).Manifest.L0.Length
    Expect.isGreaterThanOrEqual l0 3 "several L0 SSTs"
    awaitU (db.CloseAsync(None, ct)) // the last round stays in the WAL only
    Expect.isGreaterThan (walIds store dbPath).Length 0 "a WAL tail"
    model

let private hex (s: string) = Bytes.toHex (Encoding.UTF8.GetBytes s)

let private asEntries (m: Map<string, string>) : Entry list =
    [ for KeyValue(k, v) in m ->
          { Key = hex k
            Value = hex v
            Seq = 0UL
            CreateTs = 0L
            ExpireTs = None } ]

let private slateDbOnMoto =
    test "SlateDB reads a database Slate wrote to a moto bucket, continues it, and Slate reads the result" {
        requireBinding () |> ignore
        let e = require moto
        // SlateDB's s3:// URLs name a bucket root, so this test has a bucket of its own
        let bucket = createBucket e
        use store = new S3ObjectStore(s3Config e bucket)
        let dbPath = "interop/db"
        let model = slateWrites store dbPath

        let env =
            [ "AWS_ACCESS_KEY_ID", fst s3TestKeys
              "AWS_SECRET_ACCESS_KEY", snd s3TestKeys
              "AWS_REGION", "us-east-1"
              "AWS_ENDPOINT", e.Endpoint
              "AWS_ALLOW_HTTP", "true"
              "AWS_EC2_METADATA_DISABLED", "true" ]

        let url = "s3://" + bucket
        let scan = nodeWithEnv env (readerScript ()) [ url; dbPath ] None
        expectSame "SlateDB reads Slate's S3 database" Values (asEntries model) (parseScan scan)

        // SlateDB continues as the writer: overwrite some keys, delete some, add new ones
        let steps =
            [ for i in 0..59 ->
                  let k = sprintf "k%04d" (i * 5)

                  if i % 4 = 0 then
                      k, None
                  else
                      k, Some(sprintf "slatedb-%d" i) ]
            @ [ for i in 0..19 -> sprintf "n%03d" i, Some(sprintf "new-%d" i) ]

        let plan =
            JsonSerializer.Serialize(
                {| steps =
                    [| for k, v in steps ->
                           match v with
                           | Some v ->
                               box
                                   {| op = "put"
                                      key = hex k
                                      value = hex v
                                      ttl_ms = Nullable<int64>() |}
                           | None -> box {| op = "delete"; key = hex k |} |] |}
            )

        nodeWithEnv env (writerScript ()) [ url; dbPath ] (Some plan) |> ignore

        let expected =
            steps
            |> List.fold
                (fun m (k, v) ->
                    match v with
                    | Some v -> Map.add k v m
                    | None -> Map.remove k m)
                model

        let db = openDb store dbPath options
        Expect.equal (scanAll db readOpts) (Map.toList expected) "Slate reads SlateDB's continuation from S3"
        awaitU (db.CloseAsync(None, ct))
    }

let allTests =
    testList
        "CloudEngine"
        [ crashOn "S3 (moto)" (fun () -> freshS3 () :> IObjectStore)
          crashOn "Azure (Azurite)" (fun () -> freshAzure () :> IObjectStore)
          slateDbOnMoto ]
