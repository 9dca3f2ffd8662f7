using System.Diagnostics;

namespace Slate.Bench;

/// <summary>Settings shared by every engine of one run.</summary>
public sealed record BenchConfig(int Records, int Reads, int Durable, long BlockCacheBytes, string Root);

/// <summary>One engine under test: runs load, flush, point reads and the durable run over its own folder.</summary>
public interface IEngineRunner
{
    string Name { get; }

    /// <summary>Engine and binding versions (for the header).</summary>
    string Version { get; }

    /// <summary>The options used, one line.</summary>
    string Describe(BenchConfig config);

    /// <summary>Runs every phase; <paramref name="add"/> receives each result as soon as it exists.</summary>
    Task RunAsync(Workload w, BenchConfig config, RssSampler rss, Action<PhaseResult> add);
}

internal static class EngineUtil
{
    public const string Load = "load fillrandom (not durable)";
    public const string Flush = "flush after load";
    public const string Read = "point read (uniform, hit)";
    public const string DurableRun = "durable put (1 writer)";

    public static string AssemblyVersion(Type t)
    {
        var a = t.Assembly;
        var info = a.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion;
        var v = info ?? a.GetName().Version?.ToString() ?? "?";
        var plus = v.IndexOf('+');
        return plus > 0 && v.Length - plus > 12 ? v[..(plus + 9)] : v;
    }

    /// <summary>Measures a non-latency step (a flush) as a row of its own.</summary>
    public static PhaseResult Timed(string engine, string workload, RssSampler rss, Action step)
    {
        rss.Reset();
        var alloc = GC.GetTotalAllocatedBytes(true);
        var pause = GC.GetTotalPauseDuration();
        var sw = Stopwatch.StartNew();
        step();
        sw.Stop();
        return new PhaseResult(engine, workload, 1, sw.Elapsed.TotalSeconds, 0, 0, 0, rss.Max / (1024.0 * 1024.0),
            GC.GetTotalAllocatedBytes(true) - alloc, null, null, 0, Timed: false,
            GcPauseSec: (GC.GetTotalPauseDuration() - pause).TotalSeconds);
    }

    public static async Task<PhaseResult> TimedAsync(string engine, string workload, RssSampler rss, Func<Task> step)
    {
        rss.Reset();
        var alloc = GC.GetTotalAllocatedBytes(true);
        var pause = GC.GetTotalPauseDuration();
        var sw = Stopwatch.StartNew();
        await step();
        sw.Stop();
        return new PhaseResult(engine, workload, 1, sw.Elapsed.TotalSeconds, 0, 0, 0, rss.Max / (1024.0 * 1024.0),
            GC.GetTotalAllocatedBytes(true) - alloc, null, null, 0, Timed: false,
            GcPauseSec: (GC.GetTotalPauseDuration() - pause).TotalSeconds);
    }

    /// <summary>Full blocking GC so one phase's garbage is not collected on the next one's clock.</summary>
    public static void Settle()
    {
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
    }
}
