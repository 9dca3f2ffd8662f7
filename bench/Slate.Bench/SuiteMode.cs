using System.Diagnostics;
using System.Globalization;
using System.Runtime;
using System.Runtime.InteropServices;
using System.Text;

namespace Slate.Bench;

/// <summary>
/// `suite` mode: the W1, W2, W6 and W8 workloads of BENCHMARKS.md on the local-filesystem store,
/// with RocksDB and ZoneTree as peers where the workload applies to them.
/// </summary>
public static class SuiteMode
{
    private static readonly string[] AllWorkloads = ["W1", "W2", "W6", "W8"];

    public const string Usage = """
        usage: dotnet run -c Release --project bench/Slate.Bench -- suite [options]
          --records N      records loaded by W1 and W6 (default 1000000)
          --workloads LIST comma-separated subset of W1,W2,W6,W8 (default all)
          --engines LIST   comma-separated subset of slate,rocksdb,zonetree (default all; W8 is Slate only)
          --seconds S      length of the W2 run (default 30)
          --writers N      W2 writers (default 16)
          --ops N          operations of each W6 mix (default = records)
          --idle S         W8 idle time (default 60)
          --acks N         W8 acknowledged durable writes before the kill (default 1000)
          --dir PATH       folder for the databases (default: a new temp folder, deleted afterwards)
          --keep           keep the database folders
        """;

    private static void Log(string s) => Console.Error.WriteLine($"[{DateTime.Now:HH:mm:ss}] {s}");

    public static async Task<int> RunAsync(string[] args)
    {
        int records = 1_000_000, seconds = 30, writers = 16, idle = 60, acks = 1000;
        int? ops = null;
        string? dir = null;
        var keep = false;
        var engines = new List<string> { "slate", "rocksdb", "zonetree" };
        var workloads = AllWorkloads.ToList();
        try
        {
            for (var i = 0; i < args.Length; i++)
            {
                string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
                int Int() => int.Parse(Next(), CultureInfo.InvariantCulture);
                switch (args[i])
                {
                    case "--records": records = Int(); break;
                    case "--seconds": seconds = Int(); break;
                    case "--writers": writers = Int(); break;
                    case "--ops": ops = Int(); break;
                    case "--idle": idle = Int(); break;
                    case "--acks": acks = Int(); break;
                    case "--engines": engines = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => s.ToLowerInvariant()).ToList(); break;
                    case "--workloads": workloads = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => s.ToUpperInvariant()).ToList(); break;
                    case "--dir": dir = Next(); break;
                    case "--keep": keep = true; break;
                    default: throw new ArgumentException($"unknown option {args[i]}");
                }
            }
            if (records < 2 || seconds < 1 || writers < 1 || idle < 1 || acks < 1 || ops is < 1)
                throw new ArgumentException("--records (at least 2), --seconds, --writers, --ops, --idle and --acks must be positive");
            if (engines.FirstOrDefault(e => e is not ("slate" or "rocksdb" or "zonetree")) is { } badE)
                throw new ArgumentException($"unknown engine '{badE}'");
            if (workloads.FirstOrDefault(x => !AllWorkloads.Contains(x)) is { } badW)
                throw new ArgumentException($"unknown workload '{badW}' (suite runs W1, W2, W6, W8)");
        }
        catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
        {
            Console.Error.WriteLine(e.Message);
            Console.Error.WriteLine(Usage);
            return 2;
        }

        const long cache = 256L * 1024 * 1024;
        var mixOps = ops ?? records;
        var started = DateTime.UtcNow;
        var root = dir ?? Path.Combine(Path.GetTempPath(), $"slate-suite-{started:yyyyMMdd-HHmmss}-{Environment.ProcessId}");
        Directory.CreateDirectory(root);
        bool Has(string wl) => workloads.Contains(wl);

        var header = new StringBuilder();
        void H(string line)
        {
            header.AppendLine(line);
            Console.WriteLine(line);
        }
        H($"# Slate suite benchmark ({started:yyyy-MM-dd HH:mm:ss} UTC)");
        H("");
        H("## Machine and runtime");
        H("");
        foreach (var line in Report.MachineLines()) H(line);
        H($"- Data folder: {root} ({Report.FileSystemOf(root)})");
        H($"- Command: suite {string.Join(' ', args)}");
        H("");
        H("## Workloads");
        H("");
        H($"- Keys: 20 bytes = big-endian u64 id + 12 ASCII '0'. Values: 400 bytes cut from a 1 MiB seeded random buffer (seed {Workload.BufferSeed}). Block cache {cache >> 20} MiB for every engine.");
        if (Has("W1")) H($"- W1: fillseq (ids 0..{records - 1:N0} in order) and fillrandom (seeded permutation, seed {Workload.LoadSeed}) of {records:N0} records, each on a fresh database, in batches of {Ingest.BatchSize:N0}, not durable; then flush and wait for compaction to go idle.");
        if (Has("W2")) H($"- W2: {writers} writers, single not-durable puts of new keys, {seconds} s, fresh database, compaction on.");
        if (Has("W6")) H($"- W6: {mixOps:N0} operations per mix (95/5 then 50/50 read/update), zipf {Mixed.Theta}, one caller, over the fillrandom data set of {records:N0} records.");
        if (Has("W8")) H($"- W8 (Slate only): {idle} s idle with default options; kill after {acks:N0} acknowledged durable writes, then reopen and check.");
        H("");
        H("## Engines");
        H("");
        foreach (var e in engines)
        {
            var (name, desc) = e switch
            {
                "slate" => ($"Slate (Slate.CSharp {EngineUtil.AssemblyVersion(typeof(SlateClient))})", SuiteDbs.DescribeSlate(cache)),
                "rocksdb" => ($"RocksDB (RocksDbSharp {EngineUtil.AssemblyVersion(typeof(RocksDbSharp.RocksDb))}, native librocksdb of NuGet RocksDB 11.12.0.7641)", SuiteDbs.DescribeRocks),
                _ => ($"ZoneTree ({EngineUtil.AssemblyVersion(typeof(ZoneTree.ZoneTreeFactory<,>))})", SuiteDbs.DescribeZoneTree),
            };
            H($"- **{name}**: {desc}");
        }
        H("");

        var w = new Workload(records, 1, 1);
        var seq = Enumerable.Range(0, records).ToArray();
        var loads = new List<LoadResult>();
        var sustained = new List<SustainedResult>();
        var mixed = new List<MixedResult>();
        IdleResult? idleResult = null;
        RecoveryResult? recovery = null;
        var notes = new List<string>();
        var failed = false;
        using var rss = new RssSampler();

        async Task Guard(string what, Func<Task> f)
        {
            try { await f(); }
            catch (Exception e)
            {
                var inner = e;
                while (inner is TypeInitializationException or AggregateException or System.Reflection.TargetInvocationException && inner.InnerException is not null)
                    inner = inner.InnerException!;
                var msg = $"{what} failed: {inner.GetType().FullName}: {inner.Message}";
                notes.Add(msg);
                Log(msg);
                Console.Error.WriteLine(e);
                failed = true;
            }
        }

        foreach (var e in engines)
        {
            var name = SuiteDbs.DisplayName(e);
            EngineUtil.Settle();
            var baseline = RssSampler.Current() / 1048576.0;
            notes.Add($"{name}: RSS before it started {baseline:F0} MiB (engines run one after another in one process; peak RSS figures are the whole process's).");
            Log($"{name}: starting (RSS {baseline:F0} MiB)");
            ISuiteDb? loaded = null;
            try
            {
                if (Has("W1"))
                {
                    await Guard($"{name} W1 fillseq", async () =>
                    {
                        var d = Path.Combine(root, e, "w1-fillseq");
                        await using (var db = await SuiteDbs.OpenAsync(e, d, cache))
                            loads.Add(await Ingest.LoadAsync(db, "fillseq", seq, w, rss, Log));
                        if (!keep) TryDelete(d);
                    });
                    await Guard($"{name} W1 fillrandom", async () =>
                    {
                        loaded = await SuiteDbs.OpenAsync(e, Path.Combine(root, e, "w1-fillrandom"), cache);
                        loads.Add(await Ingest.LoadAsync(loaded, "fillrandom", w.LoadOrder, w, rss, Log));
                    });
                }
                if (Has("W6"))
                {
                    await Guard($"{name} W6", async () =>
                    {
                        if (loaded is null)
                        {
                            loaded = await SuiteDbs.OpenAsync(e, Path.Combine(root, e, "w1-fillrandom"), cache);
                            var l = await Ingest.LoadAsync(loaded, "fillrandom (for W6)", w.LoadOrder, w, rss, Log);
                            if (l.Errors > 0) throw new InvalidOperationException($"the W6 load read back {l.Errors} wrong values");
                        }
                        var versions = new int[records];
                        mixed.Add(await Mixed.RunAsync(loaded, w, "95/5", 0.95, mixOps, versions, rss, Log));
                        mixed.Add(await Mixed.RunAsync(loaded, w, "50/50", 0.50, mixOps, versions, rss, Log));
                    });
                }
            }
            finally
            {
                if (loaded is not null)
                {
                    var d = loaded.Dir;
                    await loaded.DisposeAsync();
                    if (!keep) TryDelete(d);
                }
            }
            if (Has("W2"))
            {
                await Guard($"{name} W2", async () =>
                {
                    var d = Path.Combine(root, e, "w2");
                    await using (var db = await SuiteDbs.OpenAsync(e, d, cache))
                        sustained.Add(await Ingest.SustainedAsync(db, w, writers, seconds, rss, Log));
                    if (!keep) TryDelete(d);
                });
            }
        }

        if (Has("W8"))
        {
            if (!engines.Contains("slate"))
                notes.Add("W8 skipped: it runs on Slate only and --engines does not include slate.");
            else
            {
                var d = Path.Combine(root, "slate", "w8");
                var w8Records = Math.Min(records, 100_000);
                await Guard("Slate W8 recovery", async () => recovery = await Recovery.KillAndReopenAsync(d, w8Records, acks, cache, w, Log));
                await Guard("Slate W8 idle", async () => idleResult = await Recovery.IdleAsync(d, idle, cache, Log));
                if (recovery is not null)
                    notes.Add($"W8 data set: {w8Records:N0} loaded records (flushed) before the child started.");
                if (!keep) TryDelete(d);
            }
        }

        var body = new StringBuilder();
        if (loads.Count > 0) body.Append(Ingest.RenderLoads(loads));
        if (sustained.Count > 0) body.Append(Ingest.RenderSustained(sustained));
        if (mixed.Count > 0) body.Append(Mixed.Render(mixed, records));
        if (idleResult is not null || recovery is not null) body.Append(Recovery.Render(idleResult, recovery));

        var bad = loads.Where(x => x.Errors > 0).Select(x => $"{x.Engine} W1 {x.Load}: {x.Errors} wrong")
            .Concat(sustained.Where(x => x.Errors > 0).Select(x => $"{x.Engine} W2: {x.Errors} wrong"))
            .Concat(mixed.Where(x => x.Errors > 0).Select(x => $"{x.Engine} W6 {x.Mix}: {x.Errors} wrong"))
            .Concat(recovery is { Missing: > 0 } r ? [$"Slate W8: {r.Missing} acknowledged durable writes LOST"] : [])
            .ToList();
        if (bad.Count > 0)
        {
            failed = true;
            notes.Add("CORRECTNESS FAILURE: " + string.Join("; ", bad));
        }
        using (var p = Process.GetCurrentProcess())
            notes.Add($"Process peak working set (all engines, whole run): {p.PeakWorkingSet64 / 1048576.0:F0} MiB.");
        notes.Add("The machine is shared with other jobs: only ratios from one run are meaningful, and even those are noisy.");
        body.AppendLine("## Notes");
        body.AppendLine();
        foreach (var n in notes) body.AppendLine($"- {n}");

        Console.WriteLine(body);
        var resultsDir = Path.Combine(Report.RepoRoot(), "bench", "results");
        Directory.CreateDirectory(resultsDir);
        var file = Path.Combine(resultsDir, $"suite-{started:yyyyMMdd-HHmmss}.md");
        File.WriteAllText(file, header.ToString() + body);
        Console.WriteLine($"written to {file}");

        if (!keep && dir is null) TryDelete(root);
        return failed ? 1 : 0;
    }

    private static void TryDelete(string d)
    {
        try
        {
            if (Directory.Exists(d)) Directory.Delete(d, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"could not delete {d}: {e.Message}");
        }
    }
}
