namespace Slate;

/// <summary>Block compression codec of new SSTs.</summary>
public enum CompressionCodec
{
    /// <summary>No compression.</summary>
    None = 0,
    /// <summary>Raw Snappy blocks.</summary>
    Snappy = 1,
    /// <summary>Zlib streams.</summary>
    Zlib = 2,
    /// <summary>LZ4 blocks with a length prefix.</summary>
    Lz4 = 3,
    /// <summary>Zstandard frames.</summary>
    Zstd = 4,
}

/// <summary>Which buffer a flush writes.</summary>
public enum FlushType
{
    /// <summary>Upload the WAL buffer and wait until it is durable.</summary>
    Wal,
    /// <summary>Freeze the memtable and write it (and older frozen ones) to L0.</summary>
    MemTable,
}

/// <summary>Read durability.</summary>
public enum DurabilityLevel
{
    /// <summary>Committed data, including data that a crash can still lose.</summary>
    Memory,
    /// <summary>Only data already in object storage.</summary>
    Remote,
}

/// <summary>Scan order.</summary>
public enum IterationOrder
{
    /// <summary>Ascending unsigned-byte key order.</summary>
    Ascending,
    /// <summary>Descending key order.</summary>
    Descending,
}

/// <summary>A merge operator: combines an existing value with an operand. Must be associative.</summary>
public interface IMergeOperator
{
    /// <summary>Merges <paramref name="operand"/> onto <paramref name="existing"/> (absent when <paramref name="hasExisting"/> is false).</summary>
    /// <param name="key">The key being merged.</param>
    /// <param name="existing">The existing value (empty when absent).</param>
    /// <param name="hasExisting">Whether an existing value is present.</param>
    /// <param name="operand">The operand to apply.</param>
    /// <returns>The merged value.</returns>
    byte[] Merge(ReadOnlySpan<byte> key, ReadOnlySpan<byte> existing, bool hasExisting, ReadOnlySpan<byte> operand);
}

/// <summary>Options of the embedded compactor.</summary>
public sealed class CompactorOptions
{
    /// <summary>How often the compactor looks for work.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(5);
    /// <summary>Most compactions running at once.</summary>
    public int MaxConcurrentCompactions { get; set; } = 4;
    /// <summary>Maximum size of an output SST.</summary>
    public long MaxSstSize { get; set; } = 256L * 1024 * 1024;
    /// <summary>Fewest sources of a compaction.</summary>
    public int MinCompactionSources { get; set; } = 4;
    /// <summary>Most sources of a compaction.</summary>
    public int MaxCompactionSources { get; set; } = 8;
    /// <summary>Size ratio of the size-tiered planner.</summary>
    public double SizeRatio { get; set; } = 4.0;
    /// <summary>Merge operator of the standalone compactor (<see cref="SlateAdmin.RunCompactorAsync"/>); without one,
    /// a job over merge rows fails (logged; its sources are retried only after a back-off) and the data stays as it was.
    /// The embedded compactor of a <see cref="SlateClient"/> always uses <see cref="SlateOptions.MergeOperator"/>
    /// (the one source of truth for a writer): setting this property there to any other operator is
    /// <see cref="SlateErrorKind.Invalid"/> at open.</summary>
    public IMergeOperator? MergeOperator { get; set; }

    internal Slate.Engine.CompactorSettings ToEngine() =>
        new(PollInterval, MaxConcurrentCompactions, MaxSstSize, MinCompactionSources, MaxCompactionSources, SizeRatio);
}

/// <summary>Options of the garbage collector.</summary>
public sealed class GarbageCollectorOptions
{
    /// <summary>How often the embedded collector runs.</summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromSeconds(60);
    /// <summary>Nothing younger than this is deleted.</summary>
    public TimeSpan MinAge { get; set; } = TimeSpan.FromMinutes(5);
    /// <summary>Report what would be deleted without deleting.</summary>
    public bool DryRun { get; set; }
    /// <summary>Collect old manifests.</summary>
    public bool Manifests { get; set; } = true;
    /// <summary>Collect old WAL files.</summary>
    public bool Wal { get; set; } = true;
    /// <summary>Collect unreferenced compacted SSTs.</summary>
    public bool CompactedSsts { get; set; } = true;
    /// <summary>Collect old compactor-state files.</summary>
    public bool CompactorState { get; set; } = true;
    /// <summary>Also delete WAL fence objects.</summary>
    public bool WalFences { get; set; }
    /// <summary>Maintain GC boundary files (false for stores without conditional overwrite).</summary>
    public bool BoundaryFilesEnabled { get; set; } = true;

    internal Slate.Engine.GcSettings ToEngine() =>
        new(Interval, MinAge, DryRun, Manifests, Wal, CompactedSsts, CompactorState, WalFences, BoundaryFilesEnabled);
}

/// <summary>Settings of a <see cref="SlateClient"/> (SPEC §7). Invalid combinations fail at open with <see cref="SlateErrorKind.Invalid"/>.</summary>
public sealed class SlateOptions
{
    /// <summary>WAL flush interval; null = only explicit flushes and durability waits.</summary>
    public TimeSpan? FlushInterval { get; set; } = TimeSpan.FromMilliseconds(100);
    /// <summary>Write a WAL; false makes L0 publishes the only durability.</summary>
    public bool WalEnabled { get; set; } = true;
    /// <summary>Upload the WAL as soon as a writer awaits durability (group commit).</summary>
    public bool FlushOnDurableWait { get; set; } = true;
    /// <summary>How often the writer reloads the manifest.</summary>
    public TimeSpan ManifestPollInterval { get; set; } = TimeSpan.FromSeconds(1);
    /// <summary>Bound of fencing and manifest update loops.</summary>
    public TimeSpan ManifestUpdateTimeout { get; set; } = TimeSpan.FromSeconds(300);
    /// <summary>Bloom filters only for SSTs with at least this many rows.</summary>
    public int MinFilterKeys { get; set; } = 1000;
    /// <summary>Bloom filter bits per key; 0 disables filters.</summary>
    public int BloomBitsPerKey { get; set; } = 10;
    /// <summary>Memtable size that triggers an L0 flush (also the WAL size trigger).</summary>
    public long L0SstSizeBytes { get; set; } = 64L * 1024 * 1024;
    /// <summary>Most L0 SSTs before flushes wait for compaction.</summary>
    public int L0MaxSsts { get; set; } = 8;
    /// <summary>Parallel L0 uploads.</summary>
    public int L0FlushParallelism { get; set; } = 4;
    /// <summary>Writers wait while more than this many bytes are not yet flushed.</summary>
    public long MaxUnflushedBytes { get; set; } = 1024L * 1024 * 1024;
    /// <summary>Block compression of new SSTs.</summary>
    public CompressionCodec Compression { get; set; } = CompressionCodec.None;
    /// <summary>Data block size: 1024, 2048, 4096, 8192, 16384, 32768 or 65536.</summary>
    public int BlockSize { get; set; } = 4096;
    /// <summary>Default time to live of puts and merges; null = none.</summary>
    public TimeSpan? DefaultTtl { get; set; }
    /// <summary>Block cache size in bytes (0 disables it).</summary>
    public long BlockCacheBytes { get; set; } = 512L * 1024 * 1024;
    /// <summary>Metadata cache size in bytes.</summary>
    public long MetaCacheBytes { get; set; } = 128L * 1024 * 1024;
    /// <summary>Object-store retries; null = retry until closed.</summary>
    public int? ObjectStoreMaxRetries { get; set; }
    /// <summary>Embedded compactor; null = none.</summary>
    public CompactorOptions? Compactor { get; set; } = new();
    /// <summary>Embedded garbage collector; null = none.</summary>
    public GarbageCollectorOptions? GarbageCollector { get; set; } = new();
    /// <summary>Merge operator, required for merges.</summary>
    public IMergeOperator? MergeOperator { get; set; }
    /// <summary>Logger factory of the writer (category <c>Slate.Db</c>), its embedded compactor (<c>Slate.Compactor</c>)
    /// and garbage collector (<c>Slate.Gc</c>); null = no logging.</summary>
    public Microsoft.Extensions.Logging.ILoggerFactory? LoggerFactory { get; set; }
    /// <summary>Clock; null = the system clock.</summary>
    public TimeProvider? TimeProvider { get; set; }
}

/// <summary>Options of a read.</summary>
public sealed record ReadOptions
{
    /// <summary>Durability level of the data returned.</summary>
    public DurabilityLevel Durability { get; init; } = DurabilityLevel.Memory;
    /// <summary>Also return rows of a batch whose insertion is in progress.</summary>
    public bool Dirty { get; init; }
    /// <summary>Keep fetched blocks in the block cache.</summary>
    public bool CacheBlocks { get; init; } = true;
}

/// <summary>Options of a scan.</summary>
public sealed record ScanOptions
{
    /// <summary>Durability level of the data returned.</summary>
    public DurabilityLevel Durability { get; init; } = DurabilityLevel.Memory;
    /// <summary>Also return rows of a batch whose insertion is in progress.</summary>
    public bool Dirty { get; init; }
    /// <summary>Bytes to read ahead.</summary>
    public long ReadAheadBytes { get; init; } = 1;
    /// <summary>Keep fetched blocks in the block cache.</summary>
    public bool CacheBlocks { get; init; }
    /// <summary>Parallel block fetches.</summary>
    public int MaxFetchTasks { get; init; } = 1;
    /// <summary>Scan order.</summary>
    public IterationOrder Order { get; init; } = IterationOrder.Ascending;
}

/// <summary>Options of <see cref="SlateClient.CloseAsync"/>.</summary>
public sealed record CloseOptions
{
    /// <summary>What to flush before closing; null = nothing (writes that are not durable are lost).</summary>
    public FlushType? FlushOnClose { get; init; } = FlushType.MemTable;
}

/// <summary>Time to live of a put or merge.</summary>
public sealed record Ttl
{
    private Ttl(int kind, TimeSpan after, DateTimeOffset at) { Kind = kind; After = after; At = at; }

    internal int Kind { get; }
    internal TimeSpan After { get; }
    internal DateTimeOffset At { get; }

    /// <summary>Use <see cref="SlateOptions.DefaultTtl"/>.</summary>
    public static Ttl Default { get; } = new(0, default, default);
    /// <summary>Never expires.</summary>
    public static Ttl NoExpiry { get; } = new(1, default, default);
    /// <summary>Expires this long after the write.</summary>
    /// <param name="duration">A positive duration.</param>
    /// <returns>The TTL.</returns>
    public static Ttl ExpireAfter(TimeSpan duration) =>
        duration > TimeSpan.Zero ? new(2, duration, default) : throw new SlateException(SlateErrorKind.Invalid, "ExpireAfter must be positive");
    /// <summary>Expires at an absolute time.</summary>
    /// <param name="time">The expiry time.</param>
    /// <returns>The TTL.</returns>
    public static Ttl ExpireAt(DateTimeOffset time) => new(3, default, time);
}

/// <summary>Options of a put or merge.</summary>
public sealed record PutOptions
{
    /// <summary>Time to live.</summary>
    public Ttl Ttl { get; init; } = Ttl.Default;
}
