namespace Slate.Bench;

/// <summary>
/// Zipfian id chooser over [0, n) with exponent theta (BENCHMARKS.md: 0.99), after Gray et al.,
/// "Quickly generating billion-record synthetic databases" (the rejection-free inverse method).
/// Deterministic for a seed, so every engine replays the same ids. Rank r (0 = hottest) maps to
/// an id through a fixed multiplicative permutation, so hot keys are spread over the key space
/// instead of sitting in one SST.
/// </summary>
public sealed class Zipf
{
    private readonly long _n;
    private readonly double _theta;
    private readonly double _zetaN;
    private readonly double _alpha;
    private readonly double _eta;
    private readonly double _half;
    private readonly Random _rnd;

    public Zipf(long n, double theta, int seed)
    {
        if (n < 2) throw new ArgumentOutOfRangeException(nameof(n), "zipf needs at least 2 items");
        if (theta <= 0 || theta >= 1) throw new ArgumentOutOfRangeException(nameof(theta), "theta must be in (0, 1)");
        _n = n;
        _theta = theta;
        _zetaN = Zeta(n, theta);
        var zeta2 = Zeta(2, theta);
        _alpha = 1.0 / (1.0 - theta);
        _eta = (1.0 - Math.Pow(2.0 / n, 1.0 - theta)) / (1.0 - zeta2 / _zetaN);
        _half = 1.0 + Math.Pow(0.5, theta);
        _rnd = new Random(seed);
    }

    private static double Zeta(long n, double theta)
    {
        var sum = 0.0;
        for (long i = 1; i <= n; i++) sum += 1.0 / Math.Pow(i, theta);
        return sum;
    }

    /// <summary>The next rank: 0 is the most frequent.</summary>
    public long NextRank()
    {
        var u = _rnd.NextDouble();
        var uz = u * _zetaN;
        if (uz < 1.0) return 0;
        if (uz < _half) return 1;
        var r = (long)(_n * Math.Pow(_eta * u - _eta + 1.0, _alpha));
        return Math.Min(r, _n - 1);
    }

    /// <summary>The next id: the rank through a bijection of [0, n).</summary>
    public long Next() => Scatter(NextRank(), _n);

    /// <summary>
    /// A bijection of [0, n): multiply by a large odd constant modulo the next power of two and
    /// cycle-walk back into range (every step is a permutation, so the result is one too).
    /// </summary>
    public static long Scatter(long rank, long n)
    {
        var bits = 64 - System.Numerics.BitOperations.LeadingZeroCount((ulong)Math.Max(1, n - 1));
        var mask = bits >= 64 ? ulong.MaxValue : (1UL << bits) - 1;
        var x = (ulong)rank;
        do
        {
            x = (x * 0x9E3779B97F4A7C15UL + 0x632BE59BD9B4E019UL) & mask;
        } while (x >= (ulong)n);
        return (long)x;
    }

    /// <summary><paramref name="count"/> ids drawn from a fresh chooser.</summary>
    public static long[] Ids(long n, int count, double theta, int seed)
    {
        var z = new Zipf(n, theta, seed);
        var ids = new long[count];
        for (var i = 0; i < count; i++) ids[i] = z.Next();
        return ids;
    }
}
