using System.Diagnostics;
using System.Globalization;

namespace Slate.Bench;

/// <summary>
/// A log-linear latency histogram of Stopwatch ticks (32 sub-buckets per power of two, so a
/// quantile is within ~3% of the true value) that never allocates while recording; one per thread.
/// </summary>
public sealed class LatencyHistogram
{
    private const int Sub = 32;
    private const int SubBits = 5;
    private readonly long[] _counts = new long[64 + 58 * Sub];

    public long Count { get; private set; }
    public long MaxTicks { get; private set; }

    private static int Index(long v)
    {
        if (v < 64) return (int)Math.Max(0, v);
        var e = 63 - System.Numerics.BitOperations.LeadingZeroCount((ulong)v); // >= 6
        var sub = (int)((v >> (e - SubBits)) & (Sub - 1));
        return 64 + (e - 6) * Sub + sub;
    }

    private static double Lower(int i)
    {
        if (i < 64) return i;
        var e = (i - 64) / Sub + 6;
        var sub = (i - 64) % Sub;
        return (1L << e) + ((long)sub << (e - SubBits));
    }

    public void Record(long ticks)
    {
        _counts[Index(ticks)]++;
        Count++;
        if (ticks > MaxTicks) MaxTicks = ticks;
    }

    public void Add(LatencyHistogram o)
    {
        for (var i = 0; i < _counts.Length; i++) _counts[i] += o._counts[i];
        Count += o.Count;
        MaxTicks = Math.Max(MaxTicks, o.MaxTicks);
    }

    /// <summary>The nearest-rank quantile in microseconds (the middle of its bucket).</summary>
    public double QuantileUs(double q)
    {
        if (Count == 0) return 0;
        var rank = Math.Max(1, (long)Math.Ceiling(q * Count));
        long seen = 0;
        for (var i = 0; i < _counts.Length; i++)
        {
            seen += _counts[i];
            if (seen >= rank)
            {
                var mid = i + 1 < _counts.Length ? (Lower(i) + Lower(i + 1)) / 2 : Lower(i);
                return Math.Min(mid, MaxTicks) * 1e6 / Stopwatch.Frequency;
            }
        }
        return MaxTicks * 1e6 / Stopwatch.Frequency;
    }

    public double MaxUs => MaxTicks * 1e6 / Stopwatch.Frequency;
}

/// <summary>Process-wide counters that every engine shares.</summary>
public static class ProcStats
{
    /// <summary>Bytes the process passed to write-type system calls (/proc/self/io wchar); null off Linux.</summary>
    public static long? WrittenBytes()
    {
        try
        {
            foreach (var l in File.ReadLines("/proc/self/io"))
                if (l.StartsWith("wchar:", StringComparison.Ordinal))
                    return long.Parse(l.AsSpan(6).Trim(), CultureInfo.InvariantCulture);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }

    public static TimeSpan Cpu()
    {
        using var p = Process.GetCurrentProcess();
        return p.TotalProcessorTime;
    }

    /// <summary>Nearest-rank quantile of a sorted array.</summary>
    public static double Quantile(double[] sorted, double q) =>
        sorted.Length == 0 ? 0 : sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)];
}

/// <summary>Formatting shared by the suite's tables.</summary>
internal static class Fmt
{
    public static string N(double v, string f = "N0") => v.ToString(f, CultureInfo.InvariantCulture);

    public static string Us(double us) => us >= 100 ? N(us, "N0") : N(us, "F1");

    public static string Opt(double? v, string f = "F2") => v is { } x ? N(x, f) : "—";

    /// <summary>a / b as "1.23x", or "—" when either is missing.</summary>
    public static string Ratio(double? a, double? b) => a is { } x && b is { } y && x > 0 && y > 0 ? $"{x / y:F2}x" : "—";

    public static string MiB(double bytes) => N(bytes / 1048576.0, "N1");
}
