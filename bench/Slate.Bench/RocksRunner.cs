using System.Diagnostics;
using RocksDbSharp;

namespace Slate.Bench;

/// <summary>RocksDB through RocksDbSharp (NuGet `RocksDB`, native library inside the package).</summary>
public sealed class RocksRunner : IEngineRunner
{
    public string Name => "RocksDB";

    public string Version => $"RocksDbSharp {EngineUtil.AssemblyVersion(typeof(RocksDb))} (native librocksdb bundled in NuGet RocksDB 11.12.0.7641)";

    public string Describe(BenchConfig c) =>
        $"BlockBasedTable block_size=4096, LRU block cache {c.BlockCacheBytes >> 20} MiB, bloom 10 bits/key (full filter), " +
        "compression=none, write_buffer_size=64 MiB, WAL on, auto compaction on (defaults: leveled, 2 background jobs); " +
        "load/reads: WriteOptions sync=false, default ReadOptions; durable run: WriteOptions sync=true (fsync per put)";

    /// <summary>The options of every run (also the suite mode's): the block cache and table options must be kept alive with them.</summary>
    internal static (DbOptions Options, Cache Cache, BlockBasedTableOptions Table) CreateOptions(long blockCacheBytes)
    {
        var cache = Cache.CreateLru((ulong)blockCacheBytes);
        var table = new BlockBasedTableOptions()
            .SetBlockSize(4096)
            .SetBlockCache(cache)
            .SetFilterPolicy(BloomFilterPolicy.Create(10, false))
            .SetWholeKeyFiltering(true);
        var options = new DbOptions()
            .SetCreateIfMissing(true)
            .SetCompression(Compression.No)
            .SetWriteBufferSize(64UL * 1024 * 1024)
            .SetBlockBasedTableFactory(table);
        return (options, cache, table);
    }

    public Task RunAsync(Workload w, BenchConfig config, RssSampler rss, Action<PhaseResult> add)
    {
        var dir = Path.Combine(config.Root, "rocksdb");
        Directory.CreateDirectory(dir);
        var (options, cache, table) = CreateOptions(config.BlockCacheBytes);
        var noSync = new WriteOptions().SetSync(false);
        var sync = new WriteOptions().SetSync(true);

        using var db = RocksDb.Open(options, dir);
        var key = new byte[Workload.KeySize];

        // 1. load
        EngineUtil.Settle();
        var load = new Phase(Name, EngineUtil.Load, w.Records, rss, null);
        var lat = load.Latencies;
        var order = w.LoadOrder;
        load.Start();
        for (var i = 0; i < order.Length; i++)
        {
            var id = order[i];
            Workload.WriteKey(key, id);
            var t0 = Stopwatch.GetTimestamp();
            db.Put(key, w.Value(id).Span, null, noSync);
            lat[i] = Stopwatch.GetTimestamp() - t0;
        }
        add(load.Stop(order.Length, 0, false, false));

        add(EngineUtil.Timed(Name, EngineUtil.Flush, rss, () =>
        {
            db.Flush(new FlushOptions().SetWaitForFlush(true));
        }));

        // 2. point reads
        EngineUtil.Settle();
        var read = new Phase(Name, EngineUtil.Read, w.Reads, rss, null);
        lat = read.Latencies;
        var ids = w.ReadIds;
        long errors = 0;
        read.Start();
        for (var i = 0; i < ids.Length; i++)
        {
            var id = ids[i];
            Workload.WriteKey(key, id);
            var t0 = Stopwatch.GetTimestamp();
            var v = db.Get(key);
            lat[i] = Stopwatch.GetTimestamp() - t0;
            if (v is null || !w.IsValueOf(id, v)) errors++;
        }
        add(read.Stop(ids.Length, errors, false, false));

        // 3. durable puts, one writer
        EngineUtil.Settle();
        var dur = new Phase(Name, EngineUtil.DurableRun, w.Durable, rss, null);
        lat = dur.Latencies;
        var dids = w.DurableIds;
        dur.Start();
        for (var i = 0; i < dids.Length; i++)
        {
            var id = dids[i];
            Workload.WriteKey(key, id);
            var t0 = Stopwatch.GetTimestamp();
            db.Put(key, w.Value(id).Span, null, sync);
            lat[i] = Stopwatch.GetTimestamp() - t0;
        }
        var durResult = dur.Stop(dids.Length, 0, false, false);
        long missing = 0;
        foreach (var id in dids)
        {
            Workload.WriteKey(key, id);
            var v = db.Get(key);
            if (v is null || !w.IsValueOf(id, v)) missing++;
        }
        add(durResult with { Errors = missing });
        GC.KeepAlive(cache);
        GC.KeepAlive(table);
        GC.KeepAlive(options);
        GC.KeepAlive(noSync);
        GC.KeepAlive(sync);
        return Task.CompletedTask;
    }
}
