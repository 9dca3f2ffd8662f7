using System.Diagnostics;
using Slate.Engine;

namespace Slate.Bench;

/// <summary>Slate over the local-filesystem store, metered to count object-store requests.</summary>
public sealed class SlateRunner : IEngineRunner
{
    public string Name => "Slate";

    public string Version => $"Slate.CSharp {EngineUtil.AssemblyVersion(typeof(SlateClient))}";

    private static long L0Size => 64L * 1024 * 1024;

    /// <summary>No compactor exists yet, so L0 must hold the whole load: at least 8 (the default).</summary>
    private static int L0MaxSsts(BenchConfig c) =>
        Math.Max(8, (int)Math.Ceiling(c.Records * 480.0 / L0Size) + 2);

    public SlateOptions Options(BenchConfig c) => new()
    {
        L0SstSizeBytes = L0Size,
        L0MaxSsts = L0MaxSsts(c),
        BlockCacheBytes = c.BlockCacheBytes,
        BlockSize = 4096,
        BloomBitsPerKey = 10,
        Compression = CompressionCodec.None,
        FlushInterval = TimeSpan.FromMilliseconds(100),
        FlushOnDurableWait = true,
        Compactor = null,
        GarbageCollector = null,
    };

    public string Describe(BenchConfig c)
    {
        var o = Options(c);
        return $"local-filesystem store wrapped in MeteredObjectStore; L0SstSizeBytes={o.L0SstSizeBytes >> 20} MiB, " +
               $"L0MaxSsts={o.L0MaxSsts}, BlockCacheBytes={o.BlockCacheBytes >> 20} MiB, MetaCacheBytes={o.MetaCacheBytes >> 20} MiB, " +
               $"BlockSize={o.BlockSize}, BloomBitsPerKey={o.BloomBitsPerKey}, Compression={o.Compression}, " +
               $"FlushInterval={o.FlushInterval?.TotalMilliseconds} ms, FlushOnDurableWait={o.FlushOnDurableWait}, " +
               $"MaxUnflushedBytes={o.MaxUnflushedBytes >> 20} MiB, WAL on, Compactor=null, GarbageCollector=null";
    }

    public async Task RunAsync(Workload w, BenchConfig config, RssSampler rss, Action<PhaseResult> add)
    {
        var root = Path.Combine(config.Root, "slate");
        Directory.CreateDirectory(root);
        var metered = new MeteredObjectStore(new LocalFileObjectStore(root));
        (long, long) Counts()
        {
            var s = metered.Snapshot();
            return (s.Puts, s.Gets + s.GetRanges);
        }

        await using var db = await SlateClient.OpenAsync("db", ObjectStore.FromEngine(metered), Options(config));
        var key = new byte[Workload.KeySize];

        // 1. load
        EngineUtil.Settle();
        var load = new Phase(Name, EngineUtil.Load, w.Records, rss, Counts);
        var lat = load.Latencies;
        var order = w.LoadOrder;
        load.Start();
        for (var i = 0; i < order.Length; i++)
        {
            var id = order[i];
            Workload.WriteKey(key, id);
            var t0 = Stopwatch.GetTimestamp();
            await db.PutAsync(key, w.Value(id));
            lat[i] = Stopwatch.GetTimestamp() - t0;
        }
        add(load.Stop(order.Length, 0, countPuts: true, countGets: false));

        add(await EngineUtil.TimedAsync(Name, EngineUtil.Flush, rss, () => db.FlushAsync(FlushType.MemTable)));

        // 2. point reads
        EngineUtil.Settle();
        var read = new Phase(Name, EngineUtil.Read, w.Reads, rss, Counts);
        lat = read.Latencies;
        var ids = w.ReadIds;
        long errors = 0;
        read.Start();
        for (var i = 0; i < ids.Length; i++)
        {
            var id = ids[i];
            Workload.WriteKey(key, id);
            var t0 = Stopwatch.GetTimestamp();
            var v = await db.GetAsync(key);
            lat[i] = Stopwatch.GetTimestamp() - t0;
            if (v is null || !w.IsValueOf(id, v)) errors++;
        }
        add(read.Stop(ids.Length, errors, countPuts: false, countGets: true));

        // 3. durable puts, one writer
        EngineUtil.Settle();
        var dur = new Phase(Name, EngineUtil.DurableRun, w.Durable, rss, Counts);
        lat = dur.Latencies;
        var dids = w.DurableIds;
        dur.Start();
        for (var i = 0; i < dids.Length; i++)
        {
            var id = dids[i];
            Workload.WriteKey(key, id);
            var t0 = Stopwatch.GetTimestamp();
            await (await db.PutAsync(key, w.Value(id))).AwaitDurableAsync();
            lat[i] = Stopwatch.GetTimestamp() - t0;
        }
        var durResult = dur.Stop(dids.Length, 0, countPuts: true, countGets: false);

        // durability check of the durable run: every acknowledged write reads back
        long missing = 0;
        foreach (var id in dids)
        {
            Workload.WriteKey(key, id);
            var v = await db.GetAsync(key);
            if (v is null || !w.IsValueOf(id, v)) missing++;
        }
        add(durResult with { Errors = missing });

        await db.CloseAsync(new CloseOptions { FlushOnClose = null });
    }
}
