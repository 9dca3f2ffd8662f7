using Slate.Engine;

namespace Slate.Bench;

/// <summary>
/// Pass-through store that counts GETs (whole and ranged) by object class: SST data under
/// <c>compacted/</c> versus everything else (manifest polls, WAL reads). The cloud mode puts it
/// between the meter and the latency store, so "GETs per read" can leave out the writer's
/// once-a-second manifest poll, which is not part of any read.
/// </summary>
public sealed class GetClassCounter(IObjectStore inner) : IObjectStore
{
    private long _sstGets;
    private long _otherGets;

    /// <summary>GETs of objects under <c>compacted/</c> so far.</summary>
    public long SstGets => Interlocked.Read(ref _sstGets);

    /// <summary>GETs of every other object so far.</summary>
    public long OtherGets => Interlocked.Read(ref _otherGets);

    private void Count(string key)
    {
        if (key.Contains("/compacted/", StringComparison.Ordinal)) Interlocked.Increment(ref _sstGets);
        else Interlocked.Increment(ref _otherGets);
    }

    public Task<PutResult> PutAsync(string key, ReadOnlyMemory<byte> data, PutMode mode, IReadOnlyDictionary<string, string> attributes, CancellationToken ct) =>
        inner.PutAsync(key, data, mode, attributes, ct);

    public Task<GetResult> GetAsync(string key, CancellationToken ct)
    {
        Count(key);
        return inner.GetAsync(key, ct);
    }

    public Task<byte[]> GetRangeAsync(string key, long start, long endExclusive, CancellationToken ct)
    {
        Count(key);
        return inner.GetRangeAsync(key, start, endExclusive, ct);
    }

    public Task<HeadResult> HeadAsync(string key, CancellationToken ct) => inner.HeadAsync(key, ct);

    public Task<IReadOnlyList<ObjectMeta>> ListAsync(string prefix, CancellationToken ct) => inner.ListAsync(prefix, ct);

    public Task DeleteAsync(string key, CancellationToken ct) => inner.DeleteAsync(key, ct);

    public string Describe => inner.Describe;
}
