/// SST objects of one database: uploads, metadata and block reads by byte range, bloom filters,
/// and the block and metadata caches (SPEC §4.4, §6.3).
namespace Slate.Engine

open System
open System.Threading
open System.Threading.Tasks
open BitFaster.Caching.Lru
open Slate
open Slate.Model

/// An SST opened for reading: its object key, metadata (index) and bloom filter.
type OpenSst =
    {
        /// Object key, for messages.
        Key: string
        /// The ULID (cache key) or, for WAL SSTs, None.
        Id: Ulid
        /// Info, format version and index.
        Meta: SstMeta
        /// Bloom data, when the SST has a filter.
        Filter: byte[] option
    }

/// SST reads and writes with caches. Thread-safe.
type TableStore(store: IObjectStore, dbPath: string, blockCacheEntries: int, metaCacheEntries: int) =
    let blockCache =
        if blockCacheEntries > 0 then
            Some(ConcurrentLru<struct (Ulid * int), RowEntry[]>(blockCacheEntries))
        else
            None

    let metaCache = ConcurrentLru<Ulid, OpenSst>(max 16 metaCacheEntries)

    let keyOf (id: Ulid) =
        Paths.key dbPath (ObjectName.Compacted id)

    let getRange (key: string) (o: uint64) (l: uint64) (ct: CancellationToken) : Task<byte[]> =
        task {
            try
                let! bytes = store.GetRangeAsync(key, int64 o, int64 (o + l), ct)

                if uint64 bytes.LongLength <> l then
                    raise (
                        SlateException.Data(
                            sprintf "%s: truncated (wanted %d bytes at %d, got %d)" key l o bytes.Length
                        )
                    )

                return bytes
            with :? ObjectStoreException as e ->
                return raise (Failures.ofStore ("reading " + key) e)
        }

    /// The object store.
    member _.ObjectStore: IObjectStore = store

    /// The object key of a compacted SST.
    member _.KeyOf(id: Ulid) : string = keyOf id

    /// Uploads a compacted SST (create-if-absent).
    member _.WriteCompactedAsync(id: Ulid, sst: BuiltSst, ct: CancellationToken) : Task =
        task {
            let key = keyOf id

            try
                let! created = Store.tryCreateAsync store key sst.Bytes ct

                if not created then
                    raise (SlateException(SlateErrorKind.Internal, sprintf "%s already exists (ULID collision)" key))
            with :? ObjectStoreException as e ->
                raise (Failures.ofStore ("writing " + key) e)
        }

    /// The opened SST when it is in the metadata cache.
    member _.TryGetOpen(handle: SstHandle) : OpenSst option =
        match metaCache.TryGet handle.Id with
        | true, s -> Some s
        | _ -> None

    /// Opens an SST of the manifest: uses the manifest's copy of `SsTableInfo` and fetches the
    /// index and filter by range (cached).
    member _.OpenAsync(handle: SstHandle, ct: CancellationToken) : Task<OpenSst> =
        task {
            match metaCache.TryGet handle.Id with
            | true, s -> return s
            | _ ->
                let key = keyOf handle.Id
                let info = handle.Info
                let! indexBytes = getRange key info.IndexOffset info.IndexLen ct
                let index = Sst.decodeIndex info (ReadOnlySpan indexBytes) |> Failures.orData key

                let! filter =
                    task {
                        if info.FilterLen = 0UL then
                            return None
                        else
                            let! fb = getRange key info.FilterOffset info.FilterLen ct
                            return Sst.decodeFilter info (ReadOnlySpan fb) |> Failures.orData key
                    }

                let s =
                    { Key = key
                      Id = handle.Id
                      Meta =
                        { Info = info
                          FormatVersion = handle.FormatVersion
                          Index = index }
                      Filter = filter }

                metaCache.AddOrUpdate(handle.Id, s)
                return s
        }

    /// Reads and decodes the stats block of an SST (None when it has none).
    member _.ReadStatsAsync(handle: SstHandle, ct: CancellationToken) : Task<SstStats option> =
        task {
            let info = handle.Info

            if info.StatsLen = 0UL then
                return None
            else
                let key = keyOf handle.Id
                let! bytes = getRange key info.StatsOffset info.StatsLen ct
                return Sst.decodeStats info (ReadOnlySpan bytes) |> Failures.orData key
        }

    /// Reads data block `i` of an SST (through the block cache when `cache` is true).
    member _.ReadBlockAsync(sst: OpenSst, i: int, cache: bool, ct: CancellationToken) : Task<RowEntry[]> =
        task {
            let cached =
                match blockCache with
                | Some c ->
                    match c.TryGet(struct (sst.Id, i)) with
                    | true, rows -> Some rows
                    | _ -> None
                | None -> None

            match cached with
            | Some rows -> return rows
            | None ->
                let struct (s, e) = Sst.blockRange sst.Meta i
                let! bytes = getRange sst.Key s (e - s) ct

                let rows =
                    Sst.decodeBlock sst.Meta i (ReadOnlySpan bytes) |> Failures.orData sst.Key

                match blockCache with
                | Some c when cache -> c.AddOrUpdate(struct (sst.Id, i), rows)
                | _ -> ()

                return rows
        }

    /// Data block `i` of an SST when it is in the block cache.
    member _.TryGetCachedBlock(sst: OpenSst, i: int) : RowEntry[] option =
        match blockCache with
        | Some c ->
            match c.TryGet(struct (sst.Id, i)) with
            | true, rows -> Some rows
            | _ -> None
        | None -> None

    /// Reads data blocks `first .. last` of an SST with one range GET (read-ahead); element j is
    /// block `first + j`. Decoded blocks enter the block cache when `cache` is true.
    member _.ReadBlocksAsync
        (sst: OpenSst, first: int, last: int, cache: bool, ct: CancellationToken)
        : Task<RowEntry[][]> =
        task {
            let struct (s, _) = Sst.blockRange sst.Meta first
            let struct (_, e) = Sst.blockRange sst.Meta last
            let! bytes = getRange sst.Key s (e - s) ct

            return
                [| for i in first..last ->
                       let struct (bs, be) = Sst.blockRange sst.Meta i

                       let rows =
                           Sst.decodeBlock sst.Meta i (ReadOnlySpan(bytes, int (bs - s), int (be - bs)))
                           |> Failures.orData sst.Key

                       match blockCache with
                       | Some c when cache -> c.AddOrUpdate(struct (sst.Id, i), rows)
                       | _ -> ()

                       rows |]
        }

    /// Reads a whole WAL SST; None when it does not exist. A zero-byte object and an SST with no
    /// index entries (a fence) both read as no rows.
    member _.TryReadWalAsync(walId: uint64, ct: CancellationToken) : Task<RowEntry list option> =
        task {
            let key = Paths.key dbPath (ObjectName.Wal walId)

            let! r =
                task {
                    try
                        return! Store.tryGetAsync store key ct
                    with :? ObjectStoreException as e ->
                        return raise (Failures.ofStore ("reading " + key) e)
                }

            match r with
            | None -> return None
            | Some r when r.Data.Length = 0 -> return Some []
            | Some r -> return Some(Sst.readAll r.Data |> Failures.orData key)
        }

    /// Creates a WAL SST (or fence); false when the id already exists.
    member _.TryWriteWalAsync(walId: uint64, bytes: byte[], ct: CancellationToken) : Task<bool> =
        task {
            let key = Paths.key dbPath (ObjectName.Wal walId)

            try
                return! Store.tryCreateAsync store key bytes ct
            with :? ObjectStoreException as e ->
                return raise (Failures.ofStore ("writing " + key) e)
        }
