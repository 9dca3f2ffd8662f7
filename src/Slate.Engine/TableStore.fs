/// SST objects of one database: uploads, metadata and block reads by byte range, bloom filters,
/// and the block and metadata caches (SPEC §4.4, §6.3).
namespace Slate.Engine

open System
open System.Collections.Concurrent
open System.Threading
open System.Threading.Tasks
open BitFaster.Caching.Lru
open Slate
open Slate.Model

/// An SST opened for reading: its object key, metadata (index) and bloom filter.
type OpenSst =
    {
        /// Object key (in the owning database: this one, or an external one of a clone).
        Key: string
        /// The SST's ULID.
        Id: Ulid
        /// Where it lives: 0 = this database, else the ordinal of the external database path
        /// (part of every cache key, with the ULID).
        Location: int
        /// Info, format version and index.
        Meta: SstMeta
        /// Bloom data, when the SST has a filter.
        Filter: byte[] option
    }

/// SST reads and writes with caches. Thread-safe.
/// SSTs of a clone live in other databases (SPEC §3): `Track` registers the `external_dbs` of
/// every manifest the store serves, and `KeyOf` resolves an SST id to its owner's `compacted/`.
type TableStore(store: IObjectStore, dbPath: string, blockCacheEntries: int, metaCacheEntries: int) =
    let blockCache =
        if blockCacheEntries > 0 then
            Some(ConcurrentLru<struct (Ulid * int * int), RowEntry[]>(blockCacheEntries))
        else
            None

    let metaCache = ConcurrentLru<struct (Ulid * int), OpenSst>(max 16 metaCacheEntries)

    // external SST id -> location ordinal (≥ 1); ordinal -> database path. Only grows: an id names
    // one object for ever (ULIDs are unique), so an entry stays right after the manifest moved on.
    let externalIds = ConcurrentDictionary<Ulid, int>()
    let locations = ConcurrentDictionary<string, int>(StringComparer.Ordinal)
    let paths = ConcurrentDictionary<int, string>()
    let gate = obj ()

    let locationOf (id: Ulid) : int =
        match externalIds.TryGetValue id with
        | true, loc -> loc
        | _ -> 0

    let pathOf (loc: int) : string = if loc = 0 then dbPath else paths[loc]

    let keyAt (loc: int) (id: Ulid) : string =
        Paths.key (pathOf loc) (ObjectName.Compacted id)

    let keyOf (id: Ulid) = keyAt (locationOf id) id

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

    /// The object key of a compacted SST: in the owning external database when a tracked manifest
    /// lists it in `external_dbs`, else in this database.
    member _.KeyOf(id: Ulid) : string = keyOf id

    /// Registers the external SSTs of a manifest this store will serve SSTs of (cheap when it has
    /// no `external_dbs`). Call it for every manifest before reading its SSTs.
    member _.Track(m: Manifest) : unit =
        if not m.ExternalDbs.IsEmpty then
            for (id, path) in Clones.externalSsts m do
                let p = Paths.normalizeDbPath path

                if p = Paths.normalizeDbPath dbPath then
                    raise (
                        SlateException.Data(
                            sprintf "manifest of %s lists its own path as an external database (SST %O)" dbPath id
                        )
                    )

                let loc =
                    match locations.TryGetValue p with
                    | true, l -> l
                    | _ ->
                        lock gate (fun () ->
                            match locations.TryGetValue p with
                            | true, l -> l
                            | _ ->
                                let l = locations.Count + 1
                                paths[l] <- p
                                locations[p] <- l
                                l)

                externalIds[id] <- loc

    /// True when `id` is a tracked external SST (owned by another database).
    member _.IsExternal(id: Ulid) : bool = externalIds.ContainsKey id

    /// Uploads a compacted SST (create-if-absent).
    member _.WriteCompactedAsync(id: Ulid, sst: BuiltSst, ct: CancellationToken) : Task =
        task {
            let key = keyAt 0 id

            try
                let! created = Store.tryCreateAsync store key sst.Bytes ct

                if not created then
                    raise (SlateException(SlateErrorKind.Internal, sprintf "%s already exists (ULID collision)" key))
            with :? ObjectStoreException as e ->
                raise (Failures.ofStore ("writing " + key) e)
        }

    /// The opened SST when it is in the metadata cache.
    member _.TryGetOpen(handle: SstHandle) : OpenSst option =
        match metaCache.TryGet(struct (handle.Id, locationOf handle.Id)) with
        | true, s -> Some s
        | _ -> None

    /// Opens an SST of the manifest: uses the manifest's copy of `SsTableInfo` and fetches the
    /// index and filter by range (cached).
    member _.OpenAsync(handle: SstHandle, ct: CancellationToken) : Task<OpenSst> =
        task {
            let loc = locationOf handle.Id

            match metaCache.TryGet(struct (handle.Id, loc)) with
            | true, s -> return s
            | _ ->
                let key = keyAt loc handle.Id
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
                      Location = loc
                      Meta =
                        { Info = info
                          FormatVersion = handle.FormatVersion
                          Index = index }
                      Filter = filter }

                metaCache.AddOrUpdate(struct (handle.Id, loc), s)
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
                    match c.TryGet(struct (sst.Id, sst.Location, i)) with
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
                | Some c when cache -> c.AddOrUpdate(struct (sst.Id, sst.Location, i), rows)
                | _ -> ()

                return rows
        }

    /// Data block `i` of an SST when it is in the block cache.
    member _.TryGetCachedBlock(sst: OpenSst, i: int) : RowEntry[] option =
        match blockCache with
        | Some c ->
            match c.TryGet(struct (sst.Id, sst.Location, i)) with
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
                       | Some c when cache -> c.AddOrUpdate(struct (sst.Id, sst.Location, i), rows)
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
