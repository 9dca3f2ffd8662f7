/// The F# engine API for scripts (API.md "F#"): task-based functions over `Db`, with F# options and
/// lists where they read naturally.
namespace Slate.Engine

open System
open System.Text
open System.Threading
open System.Threading.Tasks
open Slate.Model

/// Task-based functions over a writer: `let! db = Db.open' store "path" DbOptions.defaults`.
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module Db =
    let private defaultRead: ReadOpts =
        { Durability = Durability.Memory
          Dirty = false
          CacheBlocks = true }

    /// Opens or creates the database at `path`.
    let open' (store: IObjectStore) (path: string) (options: DbOptions) : Task<Db> =
        Db.OpenAsync(store, path, options, CancellationToken.None)

    /// Opens or creates a database in a local folder (the embedded default).
    let openLocal (folder: string) (path: string) : Task<Db> =
        open' (LocalFileObjectStore(IO.Path.GetFullPath folder)) path DbOptions.defaults

    /// Puts a value (visible at once, durable later).
    let put (db: Db) (key: byte[]) (value: byte[]) : Task<WriteResult> =
        db.WriteAsync([ WriteOp.Put(key, value, Ttl.Default) ], CancellationToken.None)

    /// Puts a UTF-8 value under a UTF-8 key.
    let putString (db: Db) (key: string) (value: string) : Task<WriteResult> =
        put db (Encoding.UTF8.GetBytes key) (Encoding.UTF8.GetBytes value)

    /// Deletes a key.
    let delete (db: Db) (key: byte[]) : Task<WriteResult> =
        db.WriteAsync([ WriteOp.Delete key ], CancellationToken.None)

    /// Applies a batch atomically.
    let write (db: Db) (ops: WriteOp list) : Task<WriteResult> =
        db.WriteAsync(ops, CancellationToken.None)

    /// Waits until a write is durable.
    let awaitDurable (db: Db) (w: WriteResult) : Task =
        db.AwaitDurableAsync(w.Seq, CancellationToken.None)

    /// Reads the newest visible value.
    let get (db: Db) (key: byte[]) : Task<byte[] option> =
        task {
            let! r = db.GetAsync(key, defaultRead, CancellationToken.None)

            return
                r
                |> Option.map (fun r ->
                    match r.Value with
                    | RowValue.Value v -> v
                    | _ -> [||])
        }

    /// Reads a UTF-8 value of a UTF-8 key.
    let getString (db: Db) (key: string) : Task<string option> =
        task {
            let! v = get db (Encoding.UTF8.GetBytes key)
            return v |> Option.map Encoding.UTF8.GetString
        }

    /// Every live key/value of a range, in key order.
    let scan (db: Db) (range: KeyRange) : Task<(byte[] * byte[]) list> =
        task {
            let view, maxSeq = db.ScanView(defaultRead, None)

            let it =
                DbIterator(db.Tables, view, range, maxSeq, false, false, db.MergeOperator, db.CheckOpen)

            let acc = ResizeArray()
            let mutable go = true

            while go do
                let! batch = it.NextBatchAsync(1024, CancellationToken.None)

                for r in batch do
                    match r.Value with
                    | RowValue.Value v -> acc.Add((r.Key, v))
                    | _ -> ()

                go <- batch.Length = 1024

            return List.ofSeq acc
        }

    /// Every live key/value whose key starts with the UTF-8 prefix, as strings.
    let scanPrefixStrings (db: Db) (prefix: string) : Task<(string * string) list> =
        task {
            let! rows = scan db (KeyRange.prefix (Encoding.UTF8.GetBytes prefix))

            return
                rows
                |> List.map (fun (k, v) -> Encoding.UTF8.GetString k, Encoding.UTF8.GetString v)
        }

    /// Starts an optimistic transaction (`tx.Put`, `tx.GetAsync`, `tx.Scan`, `tx.CommitAsync`).
    let beginTransaction (db: Db) (isolation: IsolationLevel) : Transaction = Transaction.Begin(db, isolation)

    /// Flushes the WAL or the memtable.
    let flush (db: Db) (kind: FlushKind) : Task =
        db.FlushAsync(kind, CancellationToken.None)

    /// Closes, flushing the memtable to L0.
    let close (db: Db) : Task =
        db.CloseAsync(Some FlushKind.MemTable, CancellationToken.None)
