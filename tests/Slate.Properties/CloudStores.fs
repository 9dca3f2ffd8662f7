/// Fresh S3 (moto) and Azure Blob (Azurite) stores for the tests: one bucket / container per run,
/// each store on its own prefix, or a fresh bucket where a test needs the bucket root (SlateDB's
/// `s3://bucket` URLs). Tests calling these are skipped (failed under CI=true) without the emulator.
module Slate.Properties.CloudStores

open System
open Amazon.S3.Model
open Slate.ObjectStores.S3
open Slate.ObjectStores.Azure
open Slate.Properties.Emulators

/// Access key and secret the tests give moto (it accepts any).
let s3TestKeys = ("slate-test", "slate-test-secret")

/// A configuration for the running moto on `bucket`.
let s3Config (e: Emulator) (bucket: string) : S3StoreConfig =
    { S3StoreConfig.create bucket with
        ServiceUrl = Some e.Endpoint
        Region = Some "us-east-1"
        ForcePathStyle = true
        AccessKey = Some(fst s3TestKeys)
        SecretKey = Some(snd s3TestKeys) }

/// A new random bucket or container name.
let newName () =
    "slate-" + Guid.NewGuid().ToString("N").Substring(0, 20)

/// Creates a new bucket on the running moto and returns its name.
let createBucket (e: Emulator) : string =
    let name = newName ()
    use client = S3StoreConfig.createClient (s3Config e name)

    client.PutBucketAsync(PutBucketRequest(BucketName = name)).GetAwaiter().GetResult()
    |> ignore

    name

/// The run's shared bucket (created on first use).
let sharedBucket: Lazy<string> = lazy (createBucket (require moto))

/// A fresh S3 store on a fresh prefix of the run's bucket.
let freshS3 () : S3ObjectStore =
    let e = require moto

    new S3ObjectStore(
        { s3Config e sharedBucket.Value with
            Prefix = Some $"t/{Guid.NewGuid():N}" }
    )

/// A configuration for the running Azurite on `container`.
let azureConfig (e: Emulator) (container: string) : AzureBlobStoreConfig =
    AzureBlobStoreConfig.ofConnectionString (azuriteConnectionString e) container

/// A new container name (the container is created by the first store that writes to it).
let newContainerName () = newName ()

/// The run's shared container (created by the first store that writes to it).
let sharedContainer: Lazy<string> = lazy (newContainerName ())

/// A fresh Azure Blob store on a fresh prefix of the run's container.
let freshAzure () : AzureBlobObjectStore =
    let e = require azurite

    AzureBlobObjectStore(
        { azureConfig e sharedContainer.Value with
            Prefix = Some $"t/{Guid.NewGuid():N}" }
    )
