using System.Runtime.CompilerServices;
using System.Text;

namespace Slate;

/// <summary>A range scan: <c>await foreach</c>, <see cref="NextAsync"/>, <see cref="NextBatchAsync"/> and <see cref="SeekAsync(ReadOnlyMemory{byte}, CancellationToken)"/>. I/O and data errors are sticky.</summary>
public sealed class SlateIterator : IAsyncEnumerable<KeyValue>, IAsyncDisposable
{
    private readonly Engine.DbIterator _inner;

    internal SlateIterator(Engine.DbIterator inner) => _inner = inner;

    /// <summary>The next key/value, or null when the scan is exhausted.</summary>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>The next entry or null.</returns>
    public async ValueTask<KeyValue?> NextAsync(CancellationToken cancellationToken = default)
    {
        var r = await _inner.NextAsync(cancellationToken).ConfigureAwait(false);
        return r is null ? null : KeyValue.Of(r.Value);
    }

    /// <summary>Up to <paramref name="max"/> entries; fewer means exhausted; 0 returns empty without advancing.</summary>
    /// <param name="max">Maximum number of entries.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>The entries.</returns>
    public async ValueTask<IReadOnlyList<KeyValue>> NextBatchAsync(int max, CancellationToken cancellationToken = default)
    {
        var rows = await _inner.NextBatchAsync(max, cancellationToken).ConfigureAwait(false);
        var list = new List<KeyValue>(rows.Length);
        foreach (var r in rows) list.Add(KeyValue.Of(r));
        return list;
    }

    /// <summary>Repositions: the next key returned is the first at or after <paramref name="key"/> (at or before, descending).</summary>
    /// <param name="key">Inside the scan range and beyond the last returned key, else Invalid.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>A task.</returns>
    public async ValueTask SeekAsync(ReadOnlyMemory<byte> key, CancellationToken cancellationToken = default) =>
        await _inner.SeekAsync(key.ToArray(), cancellationToken).ConfigureAwait(false);

    /// <summary>Seek to a UTF-8 key.</summary>
    /// <param name="key">The key.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>A task.</returns>
    public ValueTask SeekAsync(string key, CancellationToken cancellationToken = default) =>
        SeekAsync(Encoding.UTF8.GetBytes(key), cancellationToken);

    /// <inheritdoc/>
    public async IAsyncEnumerator<KeyValue> GetAsyncEnumerator(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            var kv = await NextAsync(cancellationToken).ConfigureAwait(false);
            if (kv is null) yield break;
            yield return kv;
        }
    }

    /// <inheritdoc/>
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

/// <summary>A consistent read view at one sequence number. Dispose to release it.</summary>
public sealed class SlateSnapshot : IDisposable
{
    private readonly SlateClient _client;
    private int _disposed;

    internal SlateSnapshot(SlateClient client, ulong seq)
    {
        _client = client;
        Seq = seq;
    }

    /// <summary>The snapshot's sequence number.</summary>
    public ulong Seq { get; }

    /// <summary>Reads a key as of the snapshot.</summary>
    /// <param name="key">The key.</param>
    /// <param name="options">Read options.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>The value or null.</returns>
    public async ValueTask<byte[]?> GetAsync(ReadOnlyMemory<byte> key, ReadOptions? options = null, CancellationToken cancellationToken = default) =>
        (await GetKeyValueAsync(key, options, cancellationToken).ConfigureAwait(false))?.Value.ToArray();

    /// <summary>Reads a key with its metadata as of the snapshot.</summary>
    /// <param name="key">The key.</param>
    /// <param name="options">Read options.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>The entry or null.</returns>
    public ValueTask<KeyValue?> GetKeyValueAsync(ReadOnlyMemory<byte> key, ReadOptions? options = null, CancellationToken cancellationToken = default)
    {
        CheckNotDisposed();
        return _client.GetKeyValueAtAsync(key, options, Seq, cancellationToken);
    }

    /// <summary>Scans a range as of the snapshot.</summary>
    /// <param name="range">The range.</param>
    /// <param name="options">Scan options.</param>
    /// <returns>An iterator.</returns>
    public SlateIterator Scan(KeyRange range, ScanOptions? options = null)
    {
        CheckNotDisposed();
        return _client.ScanAt(range, options, Seq);
    }

    /// <summary>Scans the keys with a prefix as of the snapshot.</summary>
    /// <param name="prefix">The prefix.</param>
    /// <param name="subrange">Bounds appended to the prefix, or null.</param>
    /// <param name="options">Scan options.</param>
    /// <returns>An iterator.</returns>
    public SlateIterator ScanPrefix(ReadOnlyMemory<byte> prefix, KeyRange? subrange = null, ScanOptions? options = null)
    {
        CheckNotDisposed();
        return _client.ScanAt(SlateClient.PrefixRange(prefix, subrange), options, Seq);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0) _client.ReleaseSnapshot(Seq);
    }

    private void CheckNotDisposed()
    {
        if (Volatile.Read(ref _disposed) != 0) throw new ObjectDisposedException(nameof(SlateSnapshot));
    }
}
