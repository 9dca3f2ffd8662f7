using System.Diagnostics;
using System.Text;

namespace Slate.Bench;

/// <summary>One W1 load (fillseq or fillrandom) of one engine.</summary>
public sealed record LoadResult(
    string Engine,
    string Load,
    long Ops,
    double LoadSec,
    double QuietSec,
    string QuietDetail,
    bool TimedOut,
    long? FileBytesWritten,
    long? StoreBytesWritten,
    long? StorePuts,
    long DiskBytes,
    long? LiveBytes,
    double PeakRssMiB,
    double LoadPeakRssMiB,
    long Checked,
    long Errors)
{
    public double UserBytes => Ops * (double)(Workload.KeySize + Workload.ValueSize);
    public double OpsPerSec => Ops / LoadSec;
    public double MiBPerSec => UserBytes / 1048576.0 / LoadSec;
    public double? FileWriteAmp => FileBytesWritten is { } b ? b / UserBytes : null;
    public double? StoreWriteAmp => StoreBytesWritten is { } b ? b / UserBytes : null;
    public double SpaceAmp => DiskBytes / UserBytes;
    public double? LiveSpaceAmp => LiveBytes is { } b ? b / UserBytes : null;
}

/// <summary>W2 of one engine.</summary>
public sealed record SustainedResult(
    string Engine,
    int Writers,
    long Ops,
    double Seconds,
    double[] Windows,
    LatencyHistogram Latency,
    long SlowPuts,
    double CpuCores,
    double PeakRssMiB,
    double AllocBytesPerOp,
    double GcPauseSec,
    long? StorePuts,
    long Checked,
    long Errors)
{
    public double OpsPerSec => Ops / Seconds;
    public double WindowQ(double q)
    {
        var s = Windows.OrderBy(x => x).ToArray();
        return ProcStats.Quantile(s, q);
    }

    /// <summary>1-s windows with fewer than 10% of the median window's puts.</summary>
    public int StallWindows
    {
        get
        {
            var median = WindowQ(0.5);
            return Windows.Count(x => x < 0.1 * median);
        }
    }
}

/// <summary>W1 (load) and W2 (sustained ingest).</summary>
public static class Ingest
{
    public const int BatchSize = 1024;
    private static readonly TimeSpan QuietTimeout = TimeSpan.FromMinutes(10);

    /// <summary>Loads <paramref name="order"/> in batches of 1,024 (not durable), flushes and waits for quiet, then checks a sample.</summary>
    public static async Task<LoadResult> LoadAsync(ISuiteDb db, string load, int[] order, Workload w, RssSampler rss, Action<string> log)
    {
        EngineUtil.Settle();
        rss.Reset();
        var wchar0 = ProcStats.WrittenBytes();
        var m0 = db.Metrics;
        var sw = Stopwatch.StartNew();
        for (var i = 0; i < order.Length; i += BatchSize)
            await db.WriteBatchAsync(order, i, Math.Min(BatchSize, order.Length - i), w);
        var loadSec = sw.Elapsed.TotalSeconds;
        var loadPeak = rss.Max / 1048576.0;
        log($"{db.Name} {load}: loaded {order.Length:N0} in {loadSec:F2} s ({order.Length / loadSec:N0} ops/s); flushing and waiting for compaction to go idle");
        var quiet = await db.FlushAndWaitQuietAsync(QuietTimeout);
        var wchar1 = ProcStats.WrittenBytes();
        var m1 = db.Metrics;
        var peak = rss.Max / 1048576.0;
        log($"{db.Name} {load}: peak RSS {loadPeak:F0} MiB while loading, {peak:F0} MiB up to quiet");
        log($"{db.Name} {load}: quiet {quiet.Seconds:F2} s after the flush began ({quiet.Detail})");

        // correctness: a sample of loaded keys, plus the first and last
        var key = new byte[Workload.KeySize];
        var n = order.Length;
        var sample = new List<long> { order[0], order[n - 1] };
        var r = new Random(Workload.ReadSeed);
        for (var i = 0; i < Math.Min(20_000, n); i++) sample.Add(order[r.Next(n)]);
        long errors = 0;
        foreach (var id in sample)
            if (!await db.CheckAsync(id, id, w, key)) errors++;

        return new LoadResult(db.Name, load, n, loadSec, quiet.Seconds, quiet.Detail, quiet.TimedOut,
            wchar0 is { } a && wchar1 is { } b ? b - a : null,
            m0 is { } s0 && m1 is { } s1 ? s1.BytesWritten - s0.BytesWritten : null,
            m0 is { } p0 && m1 is { } p1 ? p1.Puts - p0.Puts : null,
            SuiteDbs.DirBytes(db.Dir), await db.LiveBytesAsync(), peak, loadPeak, sample.Count, errors);
    }

    /// <summary>
    /// The id written by writer <paramref name="writer"/> as its <paramref name="i"/>-th put:
    /// distinct for every (writer, i) and scattered over the key space (fillrandom-like, new keys only).
    /// </summary>
    public static long SustainedId(int writers, int writer, long i) => Zipf.Scatter(i * writers + writer, 1L << 40);

    /// <summary>
    /// <paramref name="writers"/> writers doing single not-durable puts until the deadline: async
    /// tasks for an engine whose puts complete asynchronously (<see cref="ISuiteDb.AsyncPuts"/>),
    /// else dedicated threads (so that writers which never yield do not occupy the thread pool the
    /// engines' background work runs on).
    /// </summary>
    public static async Task<SustainedResult> SustainedAsync(ISuiteDb db, Workload w, int writers, int seconds, RssSampler rss, Action<string> log)
    {
        EngineUtil.Settle();
        var hist = new LatencyHistogram[writers];
        var windows = new long[writers][];
        var counts = new long[writers];
        var slow = new long[writers];
        var errorsDuring = new long[writers];
        var slowTicks = Stopwatch.Frequency / 10; // 100 ms
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        long t0 = 0, deadline = 0;

        async Task Writer(int me)
        {
            var key = new byte[Workload.KeySize];
            var h = hist[me];
            var win = windows[me];
            if (!start.Task.IsCompleted) await start.Task;
            long i = 0;
            var freq = Stopwatch.Frequency;
            while (true)
            {
                var id = SustainedId(writers, me, i);
                var a = Stopwatch.GetTimestamp();
                if (a >= deadline) break;
                try
                {
                    await db.PutAsync(id, id, w, key);
                }
                catch (Exception e) when (e is SlateException or RocksDbSharp.RocksDbException)
                {
                    errorsDuring[me]++;
                    break;
                }
                var b = Stopwatch.GetTimestamp();
                var lat = b - a;
                h.Record(lat);
                if (lat > slowTicks) slow[me]++;
                var sec = (b - t0) / freq;
                if (sec < win.Length) win[sec]++;
                i++;
            }
            counts[me] = i;
        }

        var tasks = new Task[writers];
        var threads = new List<Thread>();
        for (var k = 0; k < writers; k++)
        {
            var me = k;
            hist[me] = new LatencyHistogram();
            windows[me] = new long[seconds + 2];
            if (db.AsyncPuts)
                tasks[me] = Task.Run(() => Writer(me));
            else
            {
                var done = new TaskCompletionSource();
                tasks[me] = done.Task;
                var t = new Thread(() =>
                {
                    // the engine's calls complete synchronously, so this runs on this thread throughout
                    try
                    {
                        start.Task.Wait();
                        Writer(me).GetAwaiter().GetResult();
                        done.SetResult();
                    }
                    catch (Exception e) { done.SetException(e); }
                })
                { IsBackground = true, Name = $"w2-writer-{me}" };
                threads.Add(t);
                t.Start();
            }
        }

        rss.Reset();
        var m0 = db.Metrics;
        var alloc0 = GC.GetTotalAllocatedBytes(true);
        var pause0 = GC.GetTotalPauseDuration();
        var cpu0 = ProcStats.Cpu();
        t0 = Stopwatch.GetTimestamp();
        deadline = t0 + seconds * Stopwatch.Frequency;
        start.SetResult();
        await Task.WhenAll(tasks);
        var wall = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        var cpu = (ProcStats.Cpu() - cpu0).TotalSeconds;
        var alloc = GC.GetTotalAllocatedBytes(true) - alloc0;
        var pause = (GC.GetTotalPauseDuration() - pause0).TotalSeconds;
        var m1 = db.Metrics;
        var peak = rss.Max / 1048576.0;

        var all = new LatencyHistogram();
        foreach (var h in hist) all.Add(h);
        var win = new double[seconds];
        for (var s = 0; s < seconds; s++)
            foreach (var wk in windows) win[s] += wk[s];
        var ops = counts.Sum();
        log($"{db.Name} W2: {ops:N0} puts in {wall:F1} s ({ops / wall:N0} ops/s), p50 {all.QuantileUs(0.5):F1} µs, p99 {all.QuantileUs(0.99):F1} µs, CPU {cpu / wall:F2} cores");

        // correctness: every 64th put of every writer reads back
        var key2 = new byte[Workload.KeySize];
        long checkedN = 0, errors = errorsDuring.Sum();
        for (var k = 0; k < writers; k++)
            for (long i = 0; i < counts[k]; i += 64)
            {
                var id = SustainedId(writers, k, i);
                checkedN++;
                if (!await db.CheckAsync(id, id, w, key2)) errors++;
            }

        return new SustainedResult(db.Name, writers, ops, wall, win, all, slow.Sum(), cpu / wall, peak,
            ops > 0 ? (double)alloc / ops : 0, pause, m0 is { } a && m1 is { } b ? b.Puts - a.Puts : null, checkedN, errors);
    }

    public static string RenderLoads(IReadOnlyList<LoadResult> rows)
    {
        var sb = new StringBuilder();
        sb.AppendLine("## W1 load (batches of 1,024, not durable; then flush and wait for compaction to go idle)");
        sb.AppendLine();
        sb.AppendLine("| engine | load | records | ops/s | MiB/s | load s | time to quiet s | write amp (file bytes) | write amp (object store) | space amp (on disk) | space amp (live SSTs) | obj PUTs | peak RSS MiB load / to quiet | check |");
        sb.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|");
        foreach (var r in rows)
            sb.AppendLine($"| {r.Engine} | {r.Load} | {Fmt.N(r.Ops)} | {Fmt.N(r.OpsPerSec)} | {Fmt.N(r.MiBPerSec, "F1")} | {Fmt.N(r.LoadSec, "F2")} | " +
                          $"{Fmt.N(r.QuietSec, "F2")}{(r.TimedOut ? " **NOT QUIET**" : "")} | {Fmt.Opt(r.FileWriteAmp)} | {Fmt.Opt(r.StoreWriteAmp)} | {Fmt.N(r.SpaceAmp, "F2")} | " +
                          $"{Fmt.Opt(r.LiveSpaceAmp)} | {(r.StorePuts is { } p ? Fmt.N(p) : "—")} | {Fmt.N(r.LoadPeakRssMiB)} / {Fmt.N(r.PeakRssMiB)} | {Check(r.Checked, r.Errors)} |");
        sb.AppendLine();
        var rocks = rows.Where(r => r.Engine == "RocksDB").ToDictionary(r => r.Load);
        var others = rows.Where(r => r.Engine != "RocksDB" && rocks.ContainsKey(r.Load)).ToList();
        if (others.Count > 0)
        {
            sb.AppendLine("Ratios vs RocksDB (same run): ops/s higher is better; the rest lower is better.");
            sb.AppendLine();
            sb.AppendLine("| engine | load | ops/s | time to quiet | write amp (file bytes) | space amp (on disk) | peak RSS |");
            sb.AppendLine("|---|---|---:|---:|---:|---:|---:|");
            foreach (var r in others)
            {
                var b = rocks[r.Load];
                sb.AppendLine($"| {r.Engine} | {r.Load} | {Fmt.Ratio(r.OpsPerSec, b.OpsPerSec)} | {Fmt.Ratio(r.QuietSec, b.QuietSec)} | " +
                              $"{Fmt.Ratio(r.FileWriteAmp, b.FileWriteAmp)} | {Fmt.Ratio(r.SpaceAmp, b.SpaceAmp)} | {Fmt.Ratio(r.PeakRssMiB, b.PeakRssMiB)} |");
            }
            sb.AppendLine();
        }
        sb.AppendLine("- user bytes = records x (20 + 400) B. ops/s and MiB/s cover the batched writes only; time to quiet runs from the flush call " +
                      "until compaction is idle (Slate: L0 below 4 SSTs, no submitted or running job, manifest unchanged for 6 s, reported at the start of that stretch).");
        sb.AppendLine("- write amp (file bytes): bytes the whole process passed to write system calls (/proc/self/io wchar) from the load's start to quiet, / user bytes; " +
                      "the same measure for every engine (WAL + flushes + compactions + manifests). write amp (object store): payload bytes of Slate's PUTs (MeteredObjectStore) / user bytes.");
        sb.AppendLine("- space amp (on disk): size of all files in the engine's folder at quiet / user bytes (Slate's embedded GC keeps compacted SSTs and WAL files until they are 5 min old, " +
                      "so they still count); space amp (live SSTs): Slate = SSTs of the latest manifest, RocksDB = rocksdb.live-sst-files-size.");
        foreach (var r in rows) sb.AppendLine($"- {r.Engine} {r.Load} quiet state: {r.QuietDetail}.");
        sb.AppendLine();
        return sb.ToString();
    }

    public static string RenderSustained(IReadOnlyList<SustainedResult> rows)
    {
        var sb = new StringBuilder();
        var writers = rows.Count > 0 ? rows[0].Writers : 16;
        sb.AppendLine($"## W2 sustained ingest ({writers} writers, single puts, not durable, compaction on)");
        sb.AppendLine();
        sb.AppendLine("| engine | puts | s | ops/s | 1-s windows p1 / p50 / p99 ops/s | put p50 µs | p99 µs | p99.9 µs | max ms | stall windows | puts > 100 ms | CPU cores | peak RSS MiB | alloc B/op | GC pause s | obj PUTs | check |");
        sb.AppendLine("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        foreach (var r in rows)
            sb.AppendLine($"| {r.Engine} | {Fmt.N(r.Ops)} | {Fmt.N(r.Seconds, "F1")} | {Fmt.N(r.OpsPerSec)} | {Fmt.N(r.WindowQ(0.01))} / {Fmt.N(r.WindowQ(0.5))} / {Fmt.N(r.WindowQ(0.99))} | " +
                          $"{Fmt.Us(r.Latency.QuantileUs(0.5))} | {Fmt.Us(r.Latency.QuantileUs(0.99))} | {Fmt.Us(r.Latency.QuantileUs(0.999))} | {Fmt.N(r.Latency.MaxUs / 1000, "F1")} | " +
                          $"{r.StallWindows} | {Fmt.N(r.SlowPuts)} | {Fmt.N(r.CpuCores, "F2")} | {Fmt.N(r.PeakRssMiB)} | {Fmt.N(r.AllocBytesPerOp)} | {Fmt.N(r.GcPauseSec, "F2")} | " +
                          $"{(r.StorePuts is { } p ? Fmt.N(p) : "—")} | {Check(r.Checked, r.Errors)} |");
        sb.AppendLine();
        var rocks = rows.FirstOrDefault(r => r.Engine == "RocksDB");
        if (rocks is not null && rows.Count > 1)
        {
            sb.AppendLine("Ratios vs RocksDB (same run): ops/s higher is better; the rest lower is better.");
            sb.AppendLine();
            sb.AppendLine("| engine | ops/s | window p1 | put p50 | put p99 | put p99.9 | CPU cores | peak RSS |");
            sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|");
            foreach (var r in rows.Where(r => r.Engine != "RocksDB"))
                sb.AppendLine($"| {r.Engine} | {Fmt.Ratio(r.OpsPerSec, rocks.OpsPerSec)} | {Fmt.Ratio(r.WindowQ(0.01), rocks.WindowQ(0.01))} | " +
                              $"{Fmt.Ratio(r.Latency.QuantileUs(0.5), rocks.Latency.QuantileUs(0.5))} | {Fmt.Ratio(r.Latency.QuantileUs(0.99), rocks.Latency.QuantileUs(0.99))} | " +
                              $"{Fmt.Ratio(r.Latency.QuantileUs(0.999), rocks.Latency.QuantileUs(0.999))} | {Fmt.Ratio(r.CpuCores, rocks.CpuCores)} | {Fmt.Ratio(r.PeakRssMiB, rocks.PeakRssMiB)} |");
            sb.AppendLine();
        }
        sb.AppendLine("- Writers: async tasks for Slate (its puts complete asynchronously), dedicated threads for RocksDB and ZoneTree (their calls block); each put's latency is Stopwatch time around one call (log-linear histogram, ~3% resolution). " +
                      "Keys are new ids scattered over a 2^40 space; every 64th put of every writer is read back afterwards (check).");
        sb.AppendLine("- stall windows: 1-s windows with < 10% of the median window's puts. CPU cores: process CPU time / wall time. " +
                      "alloc B/op: managed bytes allocated by the whole process during the run / puts. peak RSS: whole process (engines run one after another).");
        foreach (var r in rows)
            sb.AppendLine($"- {r.Engine} puts per 1-s window: {string.Join(' ', r.Windows.Select(x => Fmt.N(x)))}");
        sb.AppendLine();
        return sb.ToString();
    }

    internal static string Check(long n, long errors) => errors == 0 ? $"ok ({Fmt.N(n)} read back)" : $"**{errors} WRONG of {Fmt.N(n)}**";
}
