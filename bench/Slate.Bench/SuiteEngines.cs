using System.Diagnostics;
using Microsoft.FSharp.Core;
using RocksDbSharp;
using Slate.Engine;
using ZoneTree;

namespace Slate.Bench;

/// <summary>What waiting for compaction to go idle found.</summary>
public sealed record QuietResult(double Seconds, string Detail, bool TimedOut);

/// <summary>
/// One open database of the suite mode, the same calls for every engine. Writes and reads take
/// the workload's ids; a value id names the value (<see cref="Workload.Value"/>) so updates can
/// write new versions that the reads then check.
/// </summary>
public interface ISuiteDb : IAsyncDisposable
{
    string Name { get; }

    /// <summary>The folder holding every file of the database.</summary>
    string Dir { get; }

    /// <summary>One atomic batch of puts (ZoneTree has no batches: one upsert each).</summary>
    ValueTask WriteBatchAsync(int[] ids, int start, int count, Workload w);

    /// <summary>One put, not durable. Callable from many threads at once.</summary>
    ValueTask PutAsync(long id, long valueId, Workload w, byte[] keyScratch);

    /// <summary>True when the key of <paramref name="id"/> holds the value of <paramref name="valueId"/>.</summary>
    ValueTask<bool> CheckAsync(long id, long valueId, Workload w, byte[] keyScratch);

    /// <summary>Flushes the memtable and waits until background compaction is idle.</summary>
    Task<QuietResult> FlushAndWaitQuietAsync(TimeSpan timeout);

    /// <summary>Object-store counters (Slate only).</summary>
    StoreMetrics? Metrics { get; }

    /// <summary>
    /// True when puts complete asynchronously (Slate hands each batch to its writer loop): W2 then
    /// drives the writers as async tasks; engines whose calls block (RocksDB, ZoneTree) get
    /// dedicated threads so that they do not hold the thread pool.
    /// </summary>
    bool AsyncPuts { get; }

    /// <summary>Bytes of the SSTs the current state references (Slate: latest manifest; others: null).</summary>
    Task<long?> LiveBytesAsync();
}

internal static class SuiteDbs
{
    public static long DirBytes(string dir)
    {
        if (!Directory.Exists(dir)) return 0;
        long n = 0;
        foreach (var f in Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories))
        {
            try { n += new FileInfo(f).Length; }
            catch (IOException) { }
        }
        return n;
    }

    /// <summary>Slate's settings in the suite: the defaults (embedded compactor and GC on) plus the common setup of BENCHMARKS.md.</summary>
    public static SlateOptions SlateOptions(long blockCacheBytes) => new()
    {
        BlockCacheBytes = blockCacheBytes,
        BlockSize = 4096,
        BloomBitsPerKey = 10,
        Compression = CompressionCodec.None,
    };

    public static string DescribeSlate(long blockCacheBytes)
    {
        var o = SlateOptions(blockCacheBytes);
        var c = o.Compactor!;
        var g = o.GarbageCollector!;
        return $"local-filesystem store wrapped in MeteredObjectStore; defaults except the common setup: L0SstSizeBytes={o.L0SstSizeBytes >> 20} MiB, " +
               $"L0MaxSsts={o.L0MaxSsts}, MaxUnflushedBytes={o.MaxUnflushedBytes >> 20} MiB, BlockCacheBytes={o.BlockCacheBytes >> 20} MiB, " +
               $"MetaCacheBytes={o.MetaCacheBytes >> 20} MiB, BlockSize={o.BlockSize}, BloomBitsPerKey={o.BloomBitsPerKey}, Compression={o.Compression}, " +
               $"FlushInterval={o.FlushInterval?.TotalMilliseconds} ms, ManifestPollInterval={o.ManifestPollInterval.TotalSeconds} s, WAL on; " +
               $"embedded compactor (PollInterval={c.PollInterval.TotalSeconds} s, MaxConcurrentCompactions={c.MaxConcurrentCompactions}, " +
               $"MinCompactionSources={c.MinCompactionSources}, MaxCompactionSources={c.MaxCompactionSources}, SizeRatio={c.SizeRatio}, MaxSstSize={c.MaxSstSize >> 20} MiB); " +
               $"embedded GC (Interval={g.Interval.TotalSeconds} s, MinAge={g.MinAge.TotalMinutes} min)";
    }

    public const string DescribeRocks =
        "same options as quick mode (BlockBasedTable block_size=4096, LRU block cache, bloom 10 bits/key, compression=none, write_buffer_size=64 MiB, " +
        "WAL on, auto compaction on: leveled, defaults); WriteOptions sync=false; W1 batches are RocksDB WriteBatches; " +
        "quiet = flush(wait) then compaction-pending, num-running-compactions, num-running-flushes and mem-table-flush-pending all 0 for 5 polls 100 ms apart";

    public const string DescribeZoneTree =
        "same options as quick mode (byte keys/values, memcmp comparer, WAL and disk segments uncompressed, WAL mode AsyncCompressed, maintainer on); " +
        "no write batches (W1 upserts one by one); every upsert is given fresh key and value arrays; " +
        "quiet = MoveMutableSegmentForward + merge to disk + WaitForBackgroundThreads";

    public static async Task<ISuiteDb> OpenAsync(string engine, string dir, long blockCacheBytes) => engine switch
    {
        "slate" => await SlateSuiteDb.OpenAsync(dir, SlateOptions(blockCacheBytes)),
        "rocksdb" => new RocksSuiteDb(dir, blockCacheBytes),
        "zonetree" => new ZoneTreeSuiteDb(dir),
        _ => throw new ArgumentException($"unknown engine '{engine}'"),
    };

    public static string DisplayName(string engine) => engine switch
    {
        "slate" => "Slate",
        "rocksdb" => "RocksDB",
        "zonetree" => "ZoneTree",
        _ => engine,
    };
}

/// <summary>Slate over the metered local-filesystem store; quiet is read from the store itself (unmetered).</summary>
public sealed class SlateSuiteDb : ISuiteDb
{
    public const string DbPath = "db";
    private readonly SlateClient _db;
    private readonly MeteredObjectStore _metered;
    private readonly SlateAdmin _admin;
    private readonly CompactorStateStore _compactions;

    public string Name => "Slate";
    public string Dir { get; }
    public SlateClient Client => _db;
    public StoreMetrics? Metrics => _metered.Snapshot();
    public bool AsyncPuts => true;

    private SlateSuiteDb(string dir, SlateClient db, MeteredObjectStore metered, LocalFileObjectStore local)
    {
        Dir = dir;
        _db = db;
        _metered = metered;
        _admin = SlateAdmin.Create(DbPath, ObjectStore.FromEngine(local));
        _compactions = new CompactorStateStore(local, DbPath);
    }

    public static async Task<SlateSuiteDb> OpenAsync(string dir, SlateOptions options)
    {
        Directory.CreateDirectory(dir);
        var local = new LocalFileObjectStore(dir);
        var metered = new MeteredObjectStore(local);
        var db = await SlateClient.OpenAsync(DbPath, ObjectStore.FromEngine(metered), options);
        return new SlateSuiteDb(dir, db, metered, local);
    }

    public async ValueTask WriteBatchAsync(int[] ids, int start, int count, Workload w)
    {
        var b = new WriteBatch();
        for (var i = start; i < start + count; i++)
            b.Put(Workload.NewKey(ids[i]), w.Value(ids[i]));
        await _db.WriteAsync(b);
    }

    public async ValueTask PutAsync(long id, long valueId, Workload w, byte[] keyScratch)
    {
        Workload.WriteKey(keyScratch, id);
        await _db.PutAsync(keyScratch, w.Value(valueId));
    }

    public async ValueTask<bool> CheckAsync(long id, long valueId, Workload w, byte[] keyScratch)
    {
        Workload.WriteKey(keyScratch, id);
        var v = await _db.GetAsync(keyScratch);
        return v is not null && w.IsValueOf(valueId, v);
    }

    /// <summary>L0 SST count of the latest manifest and the jobs of the latest compactor state that are not finished.</summary>
    public async Task<(int L0, int SortedRuns, int ActiveJobs, ulong ManifestId)> CompactionStateAsync()
    {
        var m = await _admin.ReadManifestAsync();
        var st = await _compactions.ReadLatestAsync(CancellationToken.None);
        var active = 0;
        if (FSharpOption<Tuple<ulong, Model.CompactorState>>.get_IsSome(st))
            foreach (var c in st.Value.Item2.Compactions)
                if (c.Status.IsRunning || c.Status.IsSubmitted) active++;
        return (m?.L0.Count ?? 0, m?.SortedRuns.Count ?? 0, active, m?.Id ?? 0);
    }

    /// <summary>
    /// Flushes the memtable to L0, then polls every 250 ms: quiet once L0 is below 4 SSTs (the
    /// compactor's MinCompactionSources), no job is submitted or running and the manifest has not
    /// changed for longer than one compactor poll interval (5 s + 1 s). The time reported is when
    /// that quiet stretch began.
    /// </summary>
    public async Task<QuietResult> FlushAndWaitQuietAsync(TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        await _db.FlushAsync(FlushType.MemTable);
        var confirm = TimeSpan.FromSeconds(6);
        ulong lastManifest = ulong.MaxValue;
        TimeSpan? quietSince = null;
        var polls = 0;
        (int L0, int SortedRuns, int ActiveJobs, ulong ManifestId) s = default;
        while (sw.Elapsed < timeout)
        {
            s = await CompactionStateAsync();
            polls++;
            var idle = s.L0 < 4 && s.ActiveJobs == 0;
            if (!idle || s.ManifestId != lastManifest) quietSince = idle ? sw.Elapsed : null;
            lastManifest = s.ManifestId;
            if (quietSince is { } q && sw.Elapsed - q >= confirm)
                return new QuietResult(q.TotalSeconds, $"L0={s.L0}, sorted runs={s.SortedRuns}, manifest {s.ManifestId}, {polls} polls", false);
            await Task.Delay(250);
        }
        return new QuietResult(sw.Elapsed.TotalSeconds, $"NOT QUIET after {timeout.TotalSeconds:F0} s: L0={s.L0}, active jobs={s.ActiveJobs}, sorted runs={s.SortedRuns}", true);
    }

    public async Task<long?> LiveBytesAsync()
    {
        var m = await _admin.ReadManifestAsync();
        if (m is null) return null;
        return m.L0.Sum(x => Math.Max(0, x.Size)) + m.SortedRuns.Sum(sr => sr.Ssts.Sum(x => Math.Max(0, x.Size)));
    }

    public async ValueTask DisposeAsync() => await _db.CloseAsync(new CloseOptions { FlushOnClose = null });
}

/// <summary>RocksDB with quick mode's options.</summary>
public sealed class RocksSuiteDb : ISuiteDb
{
    private readonly RocksDb _db;
    private readonly RocksDbSharp.DbOptions _options;
    private readonly Cache _cache;
    private readonly BlockBasedTableOptions _table;
    private readonly WriteOptions _noSync = new WriteOptions().SetSync(false);

    public string Name => "RocksDB";
    public string Dir { get; }
    public StoreMetrics? Metrics => null;
    public bool AsyncPuts => false;

    public RocksSuiteDb(string dir, long blockCacheBytes)
    {
        Dir = dir;
        Directory.CreateDirectory(dir);
        (_options, _cache, _table) = RocksRunner.CreateOptions(blockCacheBytes);
        _db = RocksDb.Open(_options, dir);
    }

    public ValueTask WriteBatchAsync(int[] ids, int start, int count, Workload w)
    {
        Span<byte> key = stackalloc byte[Workload.KeySize];
        using var b = new RocksDbSharp.WriteBatch();
        for (var i = start; i < start + count; i++)
        {
            Workload.WriteKey(key, ids[i]);
            b.Put(key, w.Value(ids[i]).Span);
        }
        _db.Write(b, _noSync);
        return ValueTask.CompletedTask;
    }

    public ValueTask PutAsync(long id, long valueId, Workload w, byte[] keyScratch)
    {
        Workload.WriteKey(keyScratch, id);
        _db.Put(keyScratch, w.Value(valueId).Span, null, _noSync);
        return ValueTask.CompletedTask;
    }

    public ValueTask<bool> CheckAsync(long id, long valueId, Workload w, byte[] keyScratch)
    {
        Workload.WriteKey(keyScratch, id);
        var v = _db.Get(keyScratch);
        return ValueTask.FromResult(v is not null && w.IsValueOf(valueId, v));
    }

    private long Prop(string name) => long.TryParse(_db.GetProperty(name), out var v) ? v : -1;

    public async Task<QuietResult> FlushAndWaitQuietAsync(TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        _db.Flush(new FlushOptions().SetWaitForFlush(true));
        var quiet = 0;
        while (sw.Elapsed < timeout)
        {
            var busy = Prop("rocksdb.compaction-pending") != 0 || Prop("rocksdb.num-running-compactions") != 0 ||
                       Prop("rocksdb.num-running-flushes") != 0 || Prop("rocksdb.mem-table-flush-pending") != 0;
            quiet = busy ? 0 : quiet + 1;
            if (quiet >= 5)
                return new QuietResult(sw.Elapsed.TotalSeconds - 0.4,
                    "files per level L0..L6 = " + string.Join(' ', Enumerable.Range(0, 7).Select(l => Prop($"rocksdb.num-files-at-level{l}"))), false);
            await Task.Delay(100);
        }
        return new QuietResult(sw.Elapsed.TotalSeconds, $"NOT QUIET after {timeout.TotalSeconds:F0} s", true);
    }

    public Task<long?> LiveBytesAsync() =>
        Task.FromResult<long?>(long.TryParse(_db.GetProperty("rocksdb.live-sst-files-size"), out var v) ? v : null);

    public ValueTask DisposeAsync()
    {
        _db.Dispose();
        GC.KeepAlive(_options);
        GC.KeepAlive(_cache);
        GC.KeepAlive(_table);
        GC.KeepAlive(_noSync);
        return ValueTask.CompletedTask;
    }
}

/// <summary>ZoneTree with quick mode's options and its maintainer.</summary>
public sealed class ZoneTreeSuiteDb : ISuiteDb
{
    private readonly IZoneTree<Memory<byte>, Memory<byte>> _zt;
    private readonly IMaintainer _maintainer;

    public string Name => "ZoneTree";
    public string Dir { get; }
    public StoreMetrics? Metrics => null;
    public bool AsyncPuts => false;

    public ZoneTreeSuiteDb(string dir)
    {
        Dir = dir;
        Directory.CreateDirectory(dir);
        _zt = ZoneTreeRunner.Open(dir, ZoneTree.Options.WriteAheadLogMode.AsyncCompressed);
        _maintainer = _zt.CreateMaintainer();
    }

    public ValueTask WriteBatchAsync(int[] ids, int start, int count, Workload w)
    {
        for (var i = start; i < start + count; i++)
        {
            Memory<byte> k = Workload.NewKey(ids[i]);
            Memory<byte> v = w.Value(ids[i]).ToArray();
            _zt.Upsert(in k, in v);
        }
        return ValueTask.CompletedTask;
    }

    public ValueTask PutAsync(long id, long valueId, Workload w, byte[] keyScratch)
    {
        Memory<byte> k = Workload.NewKey(id);
        Memory<byte> v = w.Value(valueId).ToArray();
        _zt.Upsert(in k, in v);
        return ValueTask.CompletedTask;
    }

    public ValueTask<bool> CheckAsync(long id, long valueId, Workload w, byte[] keyScratch)
    {
        Workload.WriteKey(keyScratch, id);
        Memory<byte> k = keyScratch;
        var found = _zt.TryGet(in k, out var v);
        return ValueTask.FromResult(found && w.IsValueOf(valueId, v.Span));
    }

    public Task<QuietResult> FlushAndWaitQuietAsync(TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        _zt.Maintenance.MoveMutableSegmentForward();
        _zt.Maintenance.StartMergeOperation()?.Join();
        _maintainer.WaitForBackgroundThreads();
        return Task.FromResult(new QuietResult(sw.Elapsed.TotalSeconds, "merged to one disk segment", false));
    }

    public Task<long?> LiveBytesAsync() => Task.FromResult<long?>(null);

    public ValueTask DisposeAsync()
    {
        _maintainer.WaitForBackgroundThreads();
        _maintainer.Dispose();
        _zt.Dispose();
        return ValueTask.CompletedTask;
    }
}
