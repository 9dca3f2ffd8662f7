/// Helpers that turn object-store and decode failures into `SlateException`s naming the object.
namespace Slate.Engine

open System
open System.Threading
open System.Threading.Tasks
open Slate
open Slate.Model

/// Error mapping at the engine edge.
[<RequireQualifiedAccess>]
module Failures =
    /// A `Data` failure for an undecodable object.
    let decode (objectKey: string) (e: DecodeError) : SlateException =
        SlateException(SlateErrorKind.Data, sprintf "%s: %s" objectKey (DecodeError.describe e))

    /// Unwraps a decode result or raises `Data` naming the object.
    let orData (objectKey: string) (r: Result<'a, DecodeError>) : 'a =
        match r with
        | Ok v -> v
        | Error e -> raise (decode objectKey e)

    /// Maps a store failure that survived retries to `Unavailable` (or `Data` for a missing object
    /// that must exist).
    let ofStore (what: string) (e: ObjectStoreException) : SlateException =
        match e.Kind with
        | ObjectStoreErrorKind.NotFound ->
            SlateException(SlateErrorKind.Data, sprintf "%s: object %s is missing" what e.Key, e)
        | _ -> SlateException(SlateErrorKind.Unavailable, sprintf "%s: %s" what e.Message, e)

/// Small task helpers.
[<RequireQualifiedAccess>]
module Store =
    /// Reads a whole object; None when it does not exist.
    let tryGetAsync (store: IObjectStore) (key: string) (ct: CancellationToken) : Task<GetResult option> =
        task {
            try
                let! r = store.GetAsync(key, ct)
                return Some r
            with :? ObjectStoreException as e when e.Kind = ObjectStoreErrorKind.NotFound ->
                return None
        }

    /// Create-if-absent put; false when the object already exists.
    let tryCreateAsync (store: IObjectStore) (key: string) (data: byte[]) (ct: CancellationToken) : Task<bool> =
        task {
            try
                let! _ = store.PutAsync(key, ReadOnlyMemory data, PutMode.CreateIfAbsent, ObjectStore.noAttributes, ct)
                return true
            with :? ObjectStoreException as e when e.Kind = ObjectStoreErrorKind.AlreadyExists ->
                return false
        }

    /// Lists a folder of a database and parses its names (foreign names are skipped).
    let listParsedAsync
        (store: IObjectStore)
        (dbPath: string)
        (dir: string)
        (ct: CancellationToken)
        : Task<(ObjectName * ObjectMeta) list> =
        task {
            let! items = store.ListAsync(Paths.dirPrefix dbPath dir, ct)

            return
                [ for m in items do
                      match Paths.parseKey dbPath m.Key with
                      | Some n -> yield n, m
                      | None -> () ]
        }
