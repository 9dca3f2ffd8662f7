using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text;

namespace Slate.Bench;

/// <summary>Machine facts and the Markdown tables.</summary>
public static class Report
{
    /// <summary>The "Machine and runtime" bullet lines every mode prints (OS, CPU, memory, runtime and GC).</summary>
    public static IEnumerable<string> MachineLines()
    {
        yield return $"- OS: {System.Runtime.InteropServices.RuntimeInformation.OSDescription} ({System.Runtime.InteropServices.RuntimeInformation.OSArchitecture})";
        yield return $"- CPU: {CpuModel()} x {Environment.ProcessorCount} logical cores";
        yield return $"- Memory: {MemTotal()}; load average at start: {LoadAvg()}";
        yield return $"- Runtime: {System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription}, {(System.Runtime.GCSettings.IsServerGC ? "server" : "workstation")} GC, " +
            $"concurrent={AppContext.TryGetSwitch("System.GC.Concurrent", out var conc) && conc}, latency mode {System.Runtime.GCSettings.LatencyMode}" +
            $"{(Debugger.IsAttached ? ", DEBUGGER ATTACHED" : "")}{(IsOptimized() ? "" : ", NOT AN OPTIMIZED BUILD")}";
    }

    private static string? ProcLine(string file, string prefix)
    {
        try
        {
            return File.ReadLines(file).FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    public static string CpuModel()
    {
        var l = ProcLine("/proc/cpuinfo", "model name");
        return l is null ? "unknown CPU" : l[(l.IndexOf(':') + 1)..].Trim();
    }

    public static string MemTotal()
    {
        var l = ProcLine("/proc/meminfo", "MemTotal:");
        if (l is null) return $"{GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 1073741824.0:F1} GiB";
        var kb = long.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
        return $"{kb / 1048576.0:F1} GiB";
    }

    public static string LoadAvg()
    {
        try { return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return "?"; }
    }

    public static bool IsOptimized()
    {
        var d = Assembly.GetExecutingAssembly().GetCustomAttribute<DebuggableAttribute>();
        return d is null || !d.IsJITOptimizerDisabled;
    }

    /// <summary>The file-system type of the mount holding <paramref name="path"/> (from /proc/mounts).</summary>
    public static string FileSystemOf(string path)
    {
        try
        {
            var full = Path.GetFullPath(path);
            var best = ("", "?", "?");
            foreach (var l in File.ReadLines("/proc/mounts"))
            {
                var f = l.Split(' ');
                if (f.Length < 3) continue;
                var mp = f[1].Replace("\\040", " ");
                if ((full == mp || full.StartsWith(mp.TrimEnd('/') + "/", StringComparison.Ordinal) || mp == "/") && mp.Length > best.Item1.Length)
                    best = (mp, f[2], f[0]);
            }
            var free = new DriveInfo(best.Item1.Length > 0 ? best.Item1 : full).AvailableFreeSpace;
            return $"{best.Item2} on {best.Item3} mounted at {best.Item1}, {free / 1073741824.0:F0} GiB free";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return "file system unknown";
        }
    }

    /// <summary>The folder holding Slate.sln, searched upwards from the current folder, then from the binary.</summary>
    public static string RepoRoot()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "Slate.sln"))) return d.FullName;
        }
        return Directory.GetCurrentDirectory();
    }

    private static string N(double v, string fmt = "N0") => v.ToString(fmt, CultureInfo.InvariantCulture);

    private static string Us(double us) => us >= 100 ? N(us, "N0") : N(us, "F1");

    private static string Ratio(double a, double b) => b > 0 && a > 0 ? $"{a / b:F2}x" : "—";

    /// <summary>"—" for a figure an engine cannot report (NaN).</summary>
    private static string Opt(double v, string fmt = "N0") => double.IsNaN(v) ? "—" : N(v, fmt);

    /// <summary>Each row selected by <paramref name="compared"/> against the same workload's row of <paramref name="baseline"/>.</summary>
    private static void RatioTable(StringBuilder sb, IReadOnlyList<PhaseResult> results, string baseline, string title, Func<PhaseResult, bool> compared)
    {
        var bases = results.Where(r => r.Engine == baseline).ToDictionary(r => r.Workload);
        var others = results.Where(r => r.Engine != baseline && compared(r)).ToList();
        if (bases.Count == 0 || others.Count == 0) return;
        sb.AppendLine($"## {title}");
        sb.AppendLine();
        sb.AppendLine("ops/s: higher is better; latency, time and RSS: lower is better.");
        sb.AppendLine();
        sb.AppendLine("| engine | workload | ops/s | p50 | p99 | time | peak RSS |");
        sb.AppendLine("|---|---|---:|---:|---:|---:|---:|");
        foreach (var r in others)
        {
            if (!bases.TryGetValue(r.Workload, out var b)) continue;
            if (r.Timed)
                sb.AppendLine($"| {r.Engine} | {r.Workload} | {Ratio(r.OpsPerSec, b.OpsPerSec)} | {Ratio(r.P50Us, b.P50Us)} | {Ratio(r.P99Us, b.P99Us)} | " +
                              $"{Ratio(r.Seconds, b.Seconds)} | {Ratio(r.RssMaxMiB, b.RssMaxMiB)} |");
            else
                sb.AppendLine($"| {r.Engine} | {r.Workload} | — | — | — | {Ratio(r.Seconds, b.Seconds)} | {Ratio(r.RssMaxMiB, b.RssMaxMiB)} |");
        }
        sb.AppendLine();
    }

    public static string Render(IReadOnlyList<PhaseResult> results, IReadOnlyList<string> notes)
    {
        var sb = new StringBuilder();
        sb.AppendLine("## Results");
        sb.AppendLine();
        sb.AppendLine("| engine | workload | ops/s | p50 µs | p99 µs | p99.9 µs | time s | GC pause s | peak RSS MiB | alloc B/op | obj PUTs /1k writes | obj GETs /1k reads | check |");
        sb.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        foreach (var r in results)
        {
            var check = r.Workload == EngineUtil.Flush ? "" : r.Errors == 0 ? "ok" : $"**{r.Errors} WRONG**";
            if (r.Timed)
                sb.AppendLine($"| {r.Engine} | {r.Workload} | {N(r.OpsPerSec)} | {Us(r.P50Us)} | {Us(r.P99Us)} | {Us(r.P999Us)} | {N(r.Seconds, "F2")} | {Opt(r.GcPauseSec, "F2")} | " +
                              $"{N(r.RssMaxMiB)} | {Opt(r.AllocBytesPerOp)} | {(r.StorePutsPer1k is { } p ? N(p, "F2") : "—")} | " +
                              $"{(r.StoreGetsPer1k is { } g ? N(g, "F2") : "—")} | {check} |");
            else
                sb.AppendLine($"| {r.Engine} | {r.Workload} | — | — | — | — | {N(r.Seconds, "F2")} | {Opt(r.GcPauseSec, "F2")} | {N(r.RssMaxMiB)} | — | — | — | {check} |");
        }
        sb.AppendLine();

        RatioTable(sb, results, "RocksDB", "Ratios vs RocksDB (same run)", r => r.Engine != "RocksDB");
        RatioTable(sb, results, "SlateDB", "Ratios Slate / SlateDB-via-Node (same run; BENCHMARKS.md: Slate >= SlateDB on every workload)",
            r => r.Engine == "Slate");

        sb.AppendLine("## Notes");
        sb.AppendLine();
        foreach (var n in notes) sb.AppendLine($"- {n}");
        sb.AppendLine("- peak RSS MiB: the largest resident set (VmRSS, sampled every 10 ms) seen during that phase, for the whole process; " +
                      "engines run one after another in one process, so memory an earlier engine left behind counts (see each engine's RSS at start).");
        sb.AppendLine("- alloc B/op: managed bytes allocated by all threads during the phase (GC.GetTotalAllocatedBytes delta) / ops; " +
                      "RocksDB's native allocations are not managed and not counted. ZoneTree's includes the fresh 20 B key and 400 B value arrays each upsert must be given.");
        sb.AppendLine("- GC pause s: time the runtime's threads were suspended by the GC during the phase (GC.GetTotalPauseDuration delta; process-wide).");
        sb.AppendLine("- obj PUTs/GETs: requests reaching Slate's object store (MeteredObjectStore under the engine's retrying wrapper; GETs = Get + GetRange). " +
                      "The load's PUTs include WAL uploads (100 ms interval) and L0 SSTs; the durable run's are WAL uploads (plus any manifest writes).");
        sb.AppendLine("- durable: Slate's local store fsyncs each object (and its folder); RocksDB sync=true fsyncs the WAL; ZoneTree SyncWALAsync fsyncs its WAL.");
        if (results.Any(r => r.Engine == "SlateDB"))
            sb.AppendLine("- SlateDB runs in a node child process (bench/slatedb-bench.mjs): its latencies include the Node binding's crossing per operation " +
                          "(that is SlateDB-via-Node by definition), its peak RSS is the node process's own, its obj PUTs are files added under its database folder, " +
                          "and its alloc and GC columns are not observable (—).");
        sb.AppendLine("- The machine is shared with other jobs: only ratios from one run are meaningful, and even those are noisy.");
        return sb.ToString();
    }
}
