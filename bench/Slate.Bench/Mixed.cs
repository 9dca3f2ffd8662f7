using System.Diagnostics;
using System.Text;

namespace Slate.Bench;

/// <summary>W6 of one engine and one read/update mix.</summary>
public sealed record MixedResult(
    string Engine,
    string Mix,
    long Ops,
    long Reads,
    long Updates,
    double Seconds,
    LatencyHistogram ReadLat,
    LatencyHistogram UpdateLat,
    double? GetsPer1k,
    double? PutsPer1k,
    double PeakRssMiB,
    double AllocBytesPerOp,
    long Errors)
{
    public double OpsPerSec => Ops / Seconds;
}

/// <summary>W6: reads and updates of zipf(0.99) ids over a loaded data set, one caller.</summary>
public static class Mixed
{
    public const double Theta = 0.99;
    public const int ZipfSeed = 6;
    public const int MixSeed = 7;

    /// <summary>
    /// The value id of version <paramref name="version"/> of <paramref name="id"/>: version 0 is the
    /// loaded value, later ones are updates (different offsets into the value buffer).
    /// </summary>
    public static long ValueId(long id, int version) => version == 0 ? id : id + ((long)version << 32);

    /// <summary>
    /// Runs <paramref name="ops"/> operations, a fraction <paramref name="readShare"/> of them reads;
    /// every read is checked against the latest version written (<paramref name="versions"/> persists
    /// across mixes so a later mix checks the earlier one's updates too).
    /// </summary>
    public static async Task<MixedResult> RunAsync(ISuiteDb db, Workload w, string mix, double readShare, int ops, int[] versions, RssSampler rss, Action<string> log)
    {
        var ids = Zipf.Ids(w.Records, ops, Theta, ZipfSeed);
        var isRead = new bool[ops];
        var r = new Random(MixSeed);
        for (var i = 0; i < ops; i++) isRead[i] = r.NextDouble() < readShare;
        var key = new byte[Workload.KeySize];
        var rl = new LatencyHistogram();
        var ul = new LatencyHistogram();
        long errors = 0, reads = 0, updates = 0;

        EngineUtil.Settle();
        rss.Reset();
        var m0 = db.Metrics;
        var alloc0 = GC.GetTotalAllocatedBytes(true);
        var t0 = Stopwatch.GetTimestamp();
        for (var i = 0; i < ops; i++)
        {
            var id = ids[i];
            if (isRead[i])
            {
                var want = ValueId(id, versions[id]);
                var a = Stopwatch.GetTimestamp();
                var ok = await db.CheckAsync(id, want, w, key);
                rl.Record(Stopwatch.GetTimestamp() - a);
                if (!ok) errors++;
                reads++;
            }
            else
            {
                var v = versions[id] + 1;
                var a = Stopwatch.GetTimestamp();
                await db.PutAsync(id, ValueId(id, v), w, key);
                ul.Record(Stopwatch.GetTimestamp() - a);
                versions[id] = v;
                updates++;
            }
        }
        var sec = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        var alloc = GC.GetTotalAllocatedBytes(true) - alloc0;
        var m1 = db.Metrics;
        var peak = rss.Max / 1048576.0;
        log($"{db.Name} W6 {mix}: {ops / sec:N0} ops/s, read p50 {rl.QuantileUs(0.5):F1} µs, update p50 {ul.QuantileUs(0.5):F1} µs, {errors} wrong");
        return new MixedResult(db.Name, mix, ops, reads, updates, sec, rl, ul,
            m0 is { } a0 && m1 is { } b0 ? (b0.Gets + b0.GetRanges - a0.Gets - a0.GetRanges) * 1000.0 / ops : null,
            m0 is { } a1 && m1 is { } b1 ? (b1.Puts - a1.Puts) * 1000.0 / ops : null,
            peak, (double)alloc / ops, errors);
    }

    public static string Render(IReadOnlyList<MixedResult> rows, int records)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"## W6 mixed read/update (zipf {Theta}, one caller, over {records:N0} loaded records)");
        sb.AppendLine();
        sb.AppendLine("| engine | mix | ops | ops/s (all) | reads/s | read p50 µs | read p99 µs | read p99.9 µs | updates/s | update p50 µs | update p99 µs | update p99.9 µs | obj GETs /1k ops | obj PUTs /1k ops | alloc B/op | peak RSS MiB | check |");
        sb.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        foreach (var r in rows)
            sb.AppendLine($"| {r.Engine} | {r.Mix} | {Fmt.N(r.Ops)} | {Fmt.N(r.OpsPerSec)} | {Fmt.N(r.Reads / r.Seconds)} | {Fmt.Us(r.ReadLat.QuantileUs(0.5))} | {Fmt.Us(r.ReadLat.QuantileUs(0.99))} | " +
                          $"{Fmt.Us(r.ReadLat.QuantileUs(0.999))} | {Fmt.N(r.Updates / r.Seconds)} | {Fmt.Us(r.UpdateLat.QuantileUs(0.5))} | {Fmt.Us(r.UpdateLat.QuantileUs(0.99))} | " +
                          $"{Fmt.Us(r.UpdateLat.QuantileUs(0.999))} | {Fmt.Opt(r.GetsPer1k)} | {Fmt.Opt(r.PutsPer1k)} | {Fmt.N(r.AllocBytesPerOp)} | {Fmt.N(r.PeakRssMiB)} | {Ingest.Check(r.Reads, r.Errors)} |");
        sb.AppendLine();
        var rocks = rows.Where(r => r.Engine == "RocksDB").ToDictionary(r => r.Mix);
        var others = rows.Where(r => r.Engine != "RocksDB" && rocks.ContainsKey(r.Mix)).ToList();
        if (others.Count > 0)
        {
            sb.AppendLine("Ratios vs RocksDB (same run): ops/s higher is better; latencies lower is better.");
            sb.AppendLine();
            sb.AppendLine("| engine | mix | ops/s | read p50 | read p99 | update p50 | update p99 |");
            sb.AppendLine("|---|---|---:|---:|---:|---:|---:|");
            foreach (var r in others)
            {
                var b = rocks[r.Mix];
                sb.AppendLine($"| {r.Engine} | {r.Mix} | {Fmt.Ratio(r.OpsPerSec, b.OpsPerSec)} | {Fmt.Ratio(r.ReadLat.QuantileUs(0.5), b.ReadLat.QuantileUs(0.5))} | " +
                              $"{Fmt.Ratio(r.ReadLat.QuantileUs(0.99), b.ReadLat.QuantileUs(0.99))} | {Fmt.Ratio(r.UpdateLat.QuantileUs(0.5), b.UpdateLat.QuantileUs(0.5))} | " +
                              $"{Fmt.Ratio(r.UpdateLat.QuantileUs(0.99), b.UpdateLat.QuantileUs(0.99))} |");
            }
            sb.AppendLine();
        }
        sb.AppendLine($"- Ids: zipf({Theta}) ranks scattered over the loaded ids (Zipf.cs, seed {ZipfSeed}); read or update drawn per op (seed {MixSeed}). " +
                      "An update writes a new 400-byte value (another offset of the value buffer); every read is checked against the latest version written.");
        sb.AppendLine("- The data set is W1's fillrandom load (flushed, compaction idle) when W1 ran, else the same load made for W6. The 95/5 mix runs first, then 50/50 on the same data.");
        sb.AppendLine("- obj GETs/PUTs per 1,000 ops: Slate's object-store requests (GETs = Get + GetRange) during the mix, including background WAL, flush and compaction traffic.");
        sb.AppendLine();
        return sb.ToString();
    }
}
