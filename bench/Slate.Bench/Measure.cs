using System.Diagnostics;

namespace Slate.Bench;

/// <summary>One row of the results table.</summary>
public sealed record PhaseResult(
    string Engine,
    string Workload,
    long Ops,
    double Seconds,
    double P50Us,
    double P99Us,
    double P999Us,
    double RssMaxMiB,
    double AllocBytesPerOp,
    double? StorePutsPer1k,
    double? StoreGetsPer1k,
    long Errors,
    bool Timed = true,
    double GcPauseSec = 0)
{
    public double OpsPerSec => Seconds > 0 ? Ops / Seconds : 0;
}

/// <summary>
/// Samples the resident set size (VmRSS, the Linux working set; <see cref="Process.WorkingSet64"/>
/// elsewhere) every 10 ms on a background thread and keeps the maximum since the last reset.
/// </summary>
public sealed class RssSampler : IDisposable
{
    private readonly Thread _thread;
    private volatile bool _stop;
    private long _max;
    private static readonly long PageSize = Environment.SystemPageSize;

    public RssSampler()
    {
        _thread = new Thread(Run) { IsBackground = true, Name = "rss-sampler", Priority = ThreadPriority.AboveNormal };
        _thread.Start();
    }

    /// <summary>The current resident set size in bytes.</summary>
    public static long Current()
    {
        if (OperatingSystem.IsLinux())
        {
            try
            {
                // /proc/self/statm: size resident shared ... (pages)
                var s = File.ReadAllText("/proc/self/statm");
                var parts = s.Split(' ');
                return long.Parse(parts[1]) * PageSize;
            }
            catch (IOException) { }
        }
        using var p = Process.GetCurrentProcess();
        return p.WorkingSet64;
    }

    private void Run()
    {
        while (!_stop)
        {
            Observe();
            Thread.Sleep(10);
        }
    }

    private void Observe()
    {
        var v = Current();
        long m;
        while (v > (m = Interlocked.Read(ref _max)))
            if (Interlocked.CompareExchange(ref _max, v, m) == m) break;
    }

    /// <summary>Starts a new observation window at the current RSS.</summary>
    public void Reset() => Interlocked.Exchange(ref _max, Current());

    /// <summary>The maximum RSS in bytes since <see cref="Reset"/> (sampled once more now).</summary>
    public long Max
    {
        get
        {
            Observe();
            return Interlocked.Read(ref _max);
        }
    }

    public void Dispose()
    {
        _stop = true;
        _thread.Join();
    }
}

/// <summary>Wraps one measured phase: wall time, allocation, RSS and optional object-store counters.</summary>
public sealed class Phase
{
    private readonly RssSampler _rss;
    private readonly Func<(long Puts, long Gets)>? _store;
    private long _startTs;
    private long _startAlloc;
    private TimeSpan _startPause;
    private (long Puts, long Gets) _startStore;

    public string Engine { get; }
    public string Workload { get; }
    public long[] Latencies { get; }

    public Phase(string engine, string workload, int ops, RssSampler rss, Func<(long Puts, long Gets)>? store)
    {
        Engine = engine;
        Workload = workload;
        Latencies = new long[ops];
        _rss = rss;
        _store = store;
    }

    public void Start()
    {
        // Touch the latency array so its pages are not first faulted inside the measurement.
        Array.Fill(Latencies, 0L);
        _rss.Reset();
        _startStore = _store?.Invoke() ?? default;
        _startAlloc = GC.GetTotalAllocatedBytes(true);
        _startPause = GC.GetTotalPauseDuration();
        _startTs = Stopwatch.GetTimestamp();
    }

    public PhaseResult Stop(long ops, long errors, bool countPuts, bool countGets)
    {
        var elapsed = Stopwatch.GetElapsedTime(_startTs);
        var alloc = GC.GetTotalAllocatedBytes(true) - _startAlloc;
        var pause = GC.GetTotalPauseDuration() - _startPause;
        var store = _store?.Invoke() ?? default;
        var rss = _rss.Max;
        var n = (int)Math.Min(ops, Latencies.Length);
        var sorted = Latencies.AsSpan(0, n).ToArray();
        Array.Sort(sorted);
        double Q(double q) => n == 0 ? 0 : sorted[(int)Math.Round(q * (n - 1))] * 1e6 / Stopwatch.Frequency;
        double? puts = _store is not null && countPuts ? (store.Puts - _startStore.Puts) * 1000.0 / ops : null;
        double? gets = _store is not null && countGets ? (store.Gets - _startStore.Gets) * 1000.0 / ops : null;
        return new PhaseResult(Engine, Workload, ops, elapsed.TotalSeconds, Q(0.50), Q(0.99), Q(0.999),
            rss / (1024.0 * 1024.0), ops > 0 ? (double)alloc / ops : 0, puts, gets, errors, GcPauseSec: pause.TotalSeconds);
    }
}
