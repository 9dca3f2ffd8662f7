using System.Diagnostics;
using ZoneTree;
using ZoneTree.Comparers;
using ZoneTree.Options;
using ZoneTree.Serializers;

namespace Slate.Bench;

/// <summary>Unsigned memcmp order over byte keys (the order of Slate and RocksDB's default comparator).</summary>
public sealed class UnsignedBytesComparer : IRefComparer<Memory<byte>>
{
    public int Compare(in Memory<byte> x, in Memory<byte> y) => x.Span.SequenceCompareTo(y.Span);
}

/// <summary>
/// ZoneTree 2.x with byte keys and values. ZoneTree keeps the caller's <see cref="Memory{T}"/>
/// in its memtable, so every upsert hands it fresh key and value arrays (allocated inside the
/// timed region: Slate copies inside PutAsync, RocksDB copies into native memory).
/// </summary>
public sealed class ZoneTreeRunner : IEngineRunner
{
    public string Name => "ZoneTree";

    public string Version => $"ZoneTree {EngineUtil.AssemblyVersion(typeof(ZoneTreeFactory<,>))}";

    public string Describe(BenchConfig c) =>
        "Memory<byte> keys/values, ByteArraySerializer, unsigned memcmp comparer; MutableSegmentMaxItemCount=1,000,000 (default), " +
        "mutable-segment bloom 10 bits/item, disk segment and WAL compression=None, default record caches (no byte-sized block cache: " +
        $"the {c.BlockCacheBytes >> 20} MiB setting has no equivalent), maintainer on (background merges); " +
        "load/reads: WAL mode AsyncCompressed (the default; queued writes, no fsync); flush = MoveMutableSegmentForward + merge to disk; " +
        "durable run: tree reopened with WAL mode Sync and every Upsert followed by SyncWALAsync (Sync mode alone writes but never fsyncs)";

    internal static IZoneTree<Memory<byte>, Memory<byte>> Open(string dir, WriteAheadLogMode mode) =>
        new ZoneTreeFactory<Memory<byte>, Memory<byte>>()
            .SetComparer(new UnsignedBytesComparer())
            .SetDataDirectory(dir)
            .SetKeySerializer(new ByteArraySerializer())
            .SetValueSerializer(new ByteArraySerializer())
            .Configure(o => o.MutableSegmentBloomFilterBitsPerItem = 10)
            .ConfigureWriteAheadLogOptions(o =>
            {
                o.WriteAheadLogMode = mode;
                o.CompressionMethod = CompressionMethod.None;
            })
            .ConfigureDiskSegmentOptions(o => o.CompressionMethod = CompressionMethod.None)
            .OpenOrCreate();

    public async Task RunAsync(Workload w, BenchConfig config, RssSampler rss, Action<PhaseResult> add)
    {
        var dir = Path.Combine(config.Root, "zonetree");
        Directory.CreateDirectory(dir);
        var key = new byte[Workload.KeySize];
        Memory<byte> keyMem = key;

        using (var zt = Open(dir, WriteAheadLogMode.AsyncCompressed))
        using (var maintainer = zt.CreateMaintainer())
        {
            // 1. load
            EngineUtil.Settle();
            var load = new Phase(Name, EngineUtil.Load, w.Records, rss, null);
            var lat = load.Latencies;
            var order = w.LoadOrder;
            load.Start();
            for (var i = 0; i < order.Length; i++)
            {
                var id = order[i];
                var t0 = Stopwatch.GetTimestamp();
                Memory<byte> k = Workload.NewKey(id);
                Memory<byte> v = w.Value(id).ToArray();
                zt.Upsert(in k, in v);
                lat[i] = Stopwatch.GetTimestamp() - t0;
            }
            add(load.Stop(order.Length, 0, false, false));

            add(EngineUtil.Timed(Name, EngineUtil.Flush, rss, () =>
            {
                zt.Maintenance.MoveMutableSegmentForward();
                zt.Maintenance.StartMergeOperation()?.Join();
                maintainer.WaitForBackgroundThreads();
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
                var found = zt.TryGet(in keyMem, out var v);
                lat[i] = Stopwatch.GetTimestamp() - t0;
                if (!found || !w.IsValueOf(id, v.Span)) errors++;
            }
            add(read.Stop(ids.Length, errors, false, false));
            maintainer.WaitForBackgroundThreads();
        }

        // 3. durable puts, one writer, on the same data reopened in Sync WAL mode
        using (var zt = Open(dir, WriteAheadLogMode.Sync))
        {
            EngineUtil.Settle();
            var dur = new Phase(Name, EngineUtil.DurableRun, w.Durable, rss, null);
            var lat = dur.Latencies;
            var dids = w.DurableIds;
            dur.Start();
            for (var i = 0; i < dids.Length; i++)
            {
                var id = dids[i];
                var t0 = Stopwatch.GetTimestamp();
                Memory<byte> k = Workload.NewKey(id);
                Memory<byte> v = w.Value(id).ToArray();
                zt.Upsert(in k, in v);
                await zt.SyncWALAsync(CancellationToken.None);
                lat[i] = Stopwatch.GetTimestamp() - t0;
            }
            var durResult = dur.Stop(dids.Length, 0, false, false);
            long missing = 0;
            foreach (var id in dids)
            {
                Workload.WriteKey(key, id);
                if (!zt.TryGet(in keyMem, out var v) || !w.IsValueOf(id, v.Span)) missing++;
            }
            // also a sample of the loaded data survives the reopen
            for (var i = 0; i < Math.Min(1000, w.Records); i++)
            {
                Workload.WriteKey(key, i);
                if (!zt.TryGet(in keyMem, out var v) || !w.IsValueOf(i, v.Span)) missing++;
            }
            add(durResult with { Errors = missing });
        }
    }
}
