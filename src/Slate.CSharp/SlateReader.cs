using System.Text;
using Microsoft.FSharp.Core;
using E = Slate.Engine;

namespace Slate;

/// <summary>A read-only view of a database (any number per path, in any process): gets and scans of durable data, following the writer per <see cref="ReaderOptions.Mode"/>.</summary>
public sealed class SlateReader : IAsyncDisposable
{
    private readonly E.Reader _reader;

    private SlateReader(E.Reader reader) => _reader = reader;

    /// <summary>The engine reader (for the F# API and tools).</summary>
    internal E.Reader Engine => _reader;

    /// <summary>Opens a reader of the database at <paramref name="path"/>. No manifest → Data ("failed to find latest manifest"); an unknown checkpoint → Data ("checkpoint missing").</summary>
    /// <param name="path">Database path inside the store.</param>
    /// <param name="store">The object store.</param>
    /// <param name="options">Settings, or null for the defaults.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>The open reader.</returns>
    public static async Task<SlateReader> OpenAsync(string path, ObjectStore store, ReaderOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(store);
        var r = await E.Reader.OpenAsync(store.Inner, path, (options ?? new ReaderOptions()).ToEngine(), cancellationToken).ConfigureAwait(false);
        return new SlateReader(r);
    }

    /// <summary>The latest visible value; null when missing or deleted (an empty value is an empty array).</summary>
    /// <param name="key">The key.</param>
    /// <param name="options">Read options (durability levels are equivalent: a reader sees only durable data).</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>The value or null.</returns>
    public async ValueTask<byte[]?> GetAsync(ReadOnlyMemory<byte> key, ReadOptions? options = null, CancellationToken cancellationToken = default) =>
        (await GetKeyValueAsync(key, options, cancellationToken).ConfigureAwait(false))?.Value.ToArray();

    /// <summary>The latest visible UTF-8 value of a UTF-8 key.</summary>
    /// <param name="key">The key.</param>
    /// <param name="options">Read options.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>The value or null.</returns>
    public async ValueTask<string?> GetStringAsync(string key, ReadOptions? options = null, CancellationToken cancellationToken = default)
    {
        var v = await GetAsync(Encoding.UTF8.GetBytes(key), options, cancellationToken).ConfigureAwait(false);
        return v is null ? null : Encoding.UTF8.GetString(v);
    }

    /// <summary>The latest visible value with its metadata.</summary>
    /// <param name="key">The key.</param>
    /// <param name="options">Read options.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>The entry or null.</returns>
    public async ValueTask<KeyValue?> GetKeyValueAsync(ReadOnlyMemory<byte> key, ReadOptions? options = null, CancellationToken cancellationToken = default)
    {
        var r = await _reader.GetAsync(Convert.Key(key), Convert.Read(options), cancellationToken).ConfigureAwait(false);
        return r is null ? null : KeyValue.Of(r.Value);
    }

    /// <summary>The latest visible value of a UTF-8 key with its metadata.</summary>
    /// <param name="key">The key.</param>
    /// <param name="options">Read options.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>The entry or null.</returns>
    public ValueTask<KeyValue?> GetKeyValueAsync(string key, ReadOptions? options = null, CancellationToken cancellationToken = default) =>
        GetKeyValueAsync(Encoding.UTF8.GetBytes(key), options, cancellationToken);

    /// <summary>Scans a range.</summary>
    /// <param name="range">The range.</param>
    /// <param name="options">Scan options.</param>
    /// <returns>An iterator.</returns>
    public SlateIterator Scan(KeyRange range, ScanOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(range);
        var descending = options?.Order == IterationOrder.Descending;
        return new SlateIterator(_reader.Scan(range.Inner, descending, Convert.Read(options).CacheBlocks));
    }

    /// <summary>Scans the keys that start with <paramref name="prefix"/>; <paramref name="subrange"/> bounds are suffixes appended to the prefix.</summary>
    /// <param name="prefix">The prefix.</param>
    /// <param name="subrange">Suffix bounds, or null for the whole prefix.</param>
    /// <param name="options">Scan options.</param>
    /// <returns>An iterator.</returns>
    public SlateIterator ScanPrefix(ReadOnlyMemory<byte> prefix, KeyRange? subrange = null, ScanOptions? options = null) =>
        Scan(SlateClient.PrefixRange(prefix, subrange), options);

    /// <summary>Scans the keys that start with a UTF-8 prefix.</summary>
    /// <param name="prefix">The prefix.</param>
    /// <param name="subrange">Suffix bounds, or null.</param>
    /// <param name="options">Scan options.</param>
    /// <returns>An iterator.</returns>
    public SlateIterator ScanPrefix(string prefix, KeyRange? subrange = null, ScanOptions? options = null) =>
        ScanPrefix(Encoding.UTF8.GetBytes(prefix), subrange, options);

    /// <summary>Stops polling and deletes the managed checkpoint. Afterwards every call throws Closed (Clean).</summary>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>A task.</returns>
    public Task CloseAsync(CancellationToken cancellationToken = default) => _reader.CloseAsync(cancellationToken);

    /// <inheritdoc/>
    public ValueTask DisposeAsync() => ((IAsyncDisposable)_reader).DisposeAsync();
}
