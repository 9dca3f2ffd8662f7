/// Engine settings (SPEC §7) as an F# record, with validation. The C# `SlateOptions` maps onto it.
namespace Slate.Engine

open System
open Microsoft.Extensions.Logging
open Microsoft.Extensions.Logging.Abstractions
open Slate
open Slate.Model

/// Settings of a compactor (embedded or standalone). Defaults per SPEC §7.
type CompactorSettings =
    {
        /// How often the compactor looks for work.
        PollInterval: TimeSpan
        /// Most compactions running at once.
        MaxConcurrentCompactions: int
        /// Maximum size of an output SST (completed data blocks).
        MaxSstSize: int64
        /// Fewest sources of a compaction.
        MinCompactionSources: int
        /// Most sources of a compaction.
        MaxCompactionSources: int
        /// Size ratio of the size-tiered planner.
        SizeRatio: float
    }

/// Functions over `CompactorSettings`.
[<RequireQualifiedAccess>]
module CompactorSettings =
    /// SPEC §7 defaults.
    let defaults: CompactorSettings =
        { PollInterval = TimeSpan.FromSeconds 5.0
          MaxConcurrentCompactions = 4
          MaxSstSize = 256L * 1024L * 1024L
          MinCompactionSources = 4
          MaxCompactionSources = 8
          SizeRatio = 4.0 }

/// Settings of a garbage collector (embedded or one pass). Defaults per SPEC §7.
type GcSettings =
    {
        /// How often the embedded collector runs.
        Interval: TimeSpan
        /// Nothing younger than this is deleted.
        MinAge: TimeSpan
        /// Report what would be deleted without deleting.
        DryRun: bool
        /// Collect old manifests.
        Manifests: bool
        /// Collect old WAL files.
        Wal: bool
        /// Collect unreferenced compacted SSTs.
        CompactedSsts: bool
        /// Collect old compactor-state files.
        CompactorState: bool
        /// Also delete WAL fence objects.
        WalFences: bool
        /// Maintain GC boundary files.
        BoundaryFilesEnabled: bool
    }

/// Functions over `GcSettings`.
[<RequireQualifiedAccess>]
module GcSettings =
    /// SPEC §7 defaults.
    let defaults: GcSettings =
        { Interval = TimeSpan.FromSeconds 60.0
          MinAge = TimeSpan.FromMinutes 5.0
          DryRun = false
          Manifests = true
          Wal = true
          CompactedSsts = true
          CompactorState = true
          WalFences = false
          BoundaryFilesEnabled = true }

/// Settings of a writer (`Db`). Defaults per SPEC §7.
[<NoComparison; NoEquality>]
type DbOptions =
    {
        /// WAL flush interval; None = only explicit flushes (and durable waits).
        FlushInterval: TimeSpan option
        /// Write a WAL (false: durability only via L0 publish).
        WalEnabled: bool
        /// Upload the WAL as soon as a writer awaits durability (group commit).
        FlushOnDurableWait: bool
        /// How often the writer reloads the manifest.
        ManifestPollInterval: TimeSpan
        /// Bounds fencing and manifest update loops.
        ManifestUpdateTimeout: TimeSpan
        /// Bloom filters only for SSTs with at least this many rows.
        MinFilterKeys: int
        /// 0 = no filters, else 2 ... 64.
        BloomBitsPerKey: int
        /// Memtable (and WAL buffer) size that triggers a flush.
        L0SstSizeBytes: int64
        /// Most L0 SSTs before flushes wait for compaction.
        L0MaxSsts: int
        /// Parallel L0 uploads.
        L0FlushParallelism: int
        /// Writers wait while more than this is unflushed.
        MaxUnflushedBytes: int64
        /// Block codec of new SSTs.
        Compression: CompressionCodec
        /// Data block size.
        BlockSize: int
        /// Default time to live of puts and merges.
        DefaultTtl: TimeSpan option
        /// Block cache size in bytes (0 disables).
        BlockCacheBytes: int64
        /// Metadata (index/filter) cache size in bytes.
        MetaCacheBytes: int64
        /// Merge operator, if any.
        MergeOperator: MergeOperator option
        /// Clock.
        TimeProvider: TimeProvider
        /// Seed of the engine's random source (ULIDs, UUIDs); None = from the OS.
        RandomSeed: int option
        /// Object-store retries of transient failures; None = until closed (SPEC §2.4).
        ObjectStoreMaxRetries: int option
        /// Embedded compactor; None = none.
        Compactor: CompactorSettings option
        /// Embedded garbage collector; None = none.
        GarbageCollector: GcSettings option
        /// Loggers of the writer (`Slate.Db`), its compactor (`Slate.Compactor`) and GC
        /// (`Slate.Gc`); `NullLoggerFactory.Instance` = no logging.
        LoggerFactory: ILoggerFactory
    }

/// Functions over `DbOptions`.
[<RequireQualifiedAccess>]
module DbOptions =
    /// SPEC §7 defaults, embedded compactor and garbage collector included (as `SlateOptions`).
    let defaults: DbOptions =
        { FlushInterval = Some(TimeSpan.FromMilliseconds 100.0)
          WalEnabled = true
          FlushOnDurableWait = true
          ManifestPollInterval = TimeSpan.FromSeconds 1.0
          ManifestUpdateTimeout = TimeSpan.FromSeconds 300.0
          MinFilterKeys = 1000
          BloomBitsPerKey = 10
          L0SstSizeBytes = 64L * 1024L * 1024L
          L0MaxSsts = 8
          L0FlushParallelism = 4
          MaxUnflushedBytes = 1024L * 1024L * 1024L
          Compression = CompressionCodec.None
          BlockSize = 4096
          DefaultTtl = None
          BlockCacheBytes = 512L * 1024L * 1024L
          MetaCacheBytes = 128L * 1024L * 1024L
          MergeOperator = None
          TimeProvider = TimeProvider.System
          RandomSeed = None
          ObjectStoreMaxRetries = None
          Compactor = Some CompactorSettings.defaults
          GarbageCollector = Some GcSettings.defaults
          LoggerFactory = NullLoggerFactory.Instance }

    /// `defaults` without the embedded compactor and garbage collector: for one-shot tools and
    /// tests that must see exactly the L0s and objects they wrote.
    let foreground: DbOptions =
        { defaults with
            Compactor = None
            GarbageCollector = None }

    /// Raises `Invalid` ("invalid configuration: ...") for settings outside SPEC §7.
    let validate (o: DbOptions) : unit =
        let fail (m: string) =
            raise (SlateException.Invalid("invalid configuration: " + m))

        match o.FlushInterval with
        | Some t when t <= TimeSpan.Zero -> fail "FlushInterval must be positive"
        | _ -> ()

        if o.ManifestPollInterval <= TimeSpan.Zero then
            fail "ManifestPollInterval must be positive"

        if o.ManifestUpdateTimeout <= TimeSpan.Zero then
            fail "ManifestUpdateTimeout must be positive"

        if o.MinFilterKeys < 0 then
            fail "MinFilterKeys must not be negative"

        if o.BloomBitsPerKey <> 0 && (o.BloomBitsPerKey < 2 || o.BloomBitsPerKey > 64) then
            fail "BloomBitsPerKey must be 0 or 2..64"

        if o.L0SstSizeBytes < 1024L then
            fail "L0SstSizeBytes must be at least 1 KiB"

        if o.L0MaxSsts < 1 then
            fail "L0MaxSsts must be at least 1"

        if o.L0FlushParallelism < 1 then
            fail "L0FlushParallelism must be at least 1"

        if o.MaxUnflushedBytes <= o.L0SstSizeBytes then
            fail "MaxUnflushedBytes must be greater than L0SstSizeBytes"

        if not (List.contains o.BlockSize [ 1024; 2048; 4096; 8192; 16384; 32768; 65536 ]) then
            fail "BlockSize must be one of 1024, 2048, 4096, 8192, 16384, 32768, 65536"

        if not (Enum.IsDefined o.Compression) then
            fail "unknown Compression codec"

        match o.DefaultTtl with
        | Some t when t <= TimeSpan.Zero -> fail "DefaultTtl must be positive"
        | _ -> ()

        if o.BlockCacheBytes < 0L || o.MetaCacheBytes < 0L then
            fail "cache sizes must not be negative"

        match o.ObjectStoreMaxRetries with
        | Some n when n < 0 -> fail "ObjectStoreMaxRetries must not be negative"
        | _ -> ()

        match o.GarbageCollector with
        | Some g when g.Interval <= TimeSpan.Zero -> fail "GarbageCollector.Interval must be positive"
        | Some g when g.MinAge < TimeSpan.Zero -> fail "GarbageCollector.MinAge must not be negative"
        | _ -> ()

    /// The SST builder options these settings imply.
    let sstOptions (o: DbOptions) : SstOptions =
        { BlockSize = o.BlockSize
          Compression = o.Compression
          BloomBitsPerKey = o.BloomBitsPerKey
          MinFilterKeys = o.MinFilterKeys }
