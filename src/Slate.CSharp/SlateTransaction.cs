using System.Text;
using Microsoft.FSharp.Core;
using E = Slate.Engine;

namespace Slate;

/// <summary>Isolation level of a transaction.</summary>
public enum IsolationLevel
{
    /// <summary>Snapshot isolation: the commit fails if another write touched a key this transaction wrote.</summary>
    Snapshot = 0,
    /// <summary>Serializable snapshot isolation: also if another write touched a key this transaction read or a range it scanned.</summary>
    SerializableSnapshot = 1,
}

/// <summary>
/// An optimistic transaction: reads see the database at <see cref="Seq"/> plus this transaction's own
/// buffered writes; <see cref="CommitAsync"/> applies the writes atomically with one sequence number,
/// or throws <see cref="SlateErrorKind.Transaction"/> on a conflict. Single use: after commit or rollback
/// every call throws <see cref="SlateErrorKind.Invalid"/>. Disposing an uncommitted transaction rolls it back.
/// </summary>
public sealed class SlateTransaction : IDisposable
{
    private readonly E.Transaction _txn;
    private readonly E.Db _db;

    internal SlateTransaction(E.Db db, E.Transaction txn)
    {
        _db = db;
        _txn = txn;
    }

    /// <summary>A unique id.</summary>
    public Guid Id => _txn.Id;

    /// <summary>The sequence number the transaction reads at.</summary>
    public ulong Seq => _txn.Seq;

    /// <summary>The isolation level.</summary>
    public IsolationLevel Isolation => (IsolationLevel)(int)_txn.Isolation;

    /// <summary>Buffers a put.</summary>
    /// <param name="key">The key (1..65535 bytes).</param>
    /// <param name="value">The value.</param>
    /// <param name="options">Put options (TTL).</param>
    public void Put(ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> value, PutOptions? options = null) =>
        _txn.Put(Convert.Key(key), value.ToArray(), Convert.Ttl(options));

    /// <summary>Buffers a put of a UTF-8 value under a UTF-8 key.</summary>
    /// <param name="key">The key.</param>
    /// <param name="value">The value.</param>
    /// <param name="options">Put options (TTL).</param>
    public void Put(string key, string value, PutOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        Put(Encoding.UTF8.GetBytes(key), Encoding.UTF8.GetBytes(value), options);
    }

    /// <summary>Buffers a delete.</summary>
    /// <param name="key">The key.</param>
    public void Delete(ReadOnlyMemory<byte> key) => _txn.Delete(Convert.Key(key));

    /// <summary>Buffers a delete of a UTF-8 key.</summary>
    /// <param name="key">The key.</param>
    public void Delete(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        Delete(Encoding.UTF8.GetBytes(key));
    }

    /// <summary>Buffers a merge operand; Invalid when no merge operator is configured.</summary>
    /// <param name="key">The key.</param>
    /// <param name="operand">The operand.</param>
    /// <param name="options">Put options (TTL).</param>
    public void Merge(ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> operand, PutOptions? options = null) =>
        _txn.Merge(Convert.Key(key), operand.ToArray(), Convert.Ttl(options));

    /// <summary>Buffers a UTF-8 merge operand for a UTF-8 key.</summary>
    /// <param name="key">The key.</param>
    /// <param name="operand">The operand.</param>
    /// <param name="options">Put options (TTL).</param>
    public void Merge(string key, string operand, PutOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(operand);
        Merge(Encoding.UTF8.GetBytes(key), Encoding.UTF8.GetBytes(operand), options);
    }

    /// <summary>Reads a key as of <see cref="Seq"/> with this transaction's writes applied; null when missing or deleted.</summary>
    /// <param name="key">The key.</param>
    /// <param name="options">Read options.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>The value or null.</returns>
    public async ValueTask<byte[]?> GetAsync(ReadOnlyMemory<byte> key, ReadOptions? options = null, CancellationToken cancellationToken = default) =>
        (await GetKeyValueAsync(key, options, cancellationToken).ConfigureAwait(false))?.Value.ToArray();

    /// <summary>Reads a UTF-8 value of a UTF-8 key.</summary>
    /// <param name="key">The key.</param>
    /// <param name="options">Read options.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>The value or null.</returns>
    public async ValueTask<string?> GetStringAsync(string key, ReadOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        var v = await GetAsync(Encoding.UTF8.GetBytes(key), options, cancellationToken).ConfigureAwait(false);
        return v is null ? null : Encoding.UTF8.GetString(v);
    }

    /// <summary>Reads a key with its metadata. A value written by this transaction reports <c>Seq = ulong.MaxValue</c> (not yet assigned).</summary>
    /// <param name="key">The key.</param>
    /// <param name="options">Read options.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>The entry or null.</returns>
    public async ValueTask<KeyValue?> GetKeyValueAsync(ReadOnlyMemory<byte> key, ReadOptions? options = null, CancellationToken cancellationToken = default)
    {
        var r = await _txn.GetAsync(Convert.Key(key), Convert.Read(options), cancellationToken).ConfigureAwait(false);
        return r is null ? null : KeyValue.Of(r.Value);
    }

    /// <summary>Reads a UTF-8 key with its metadata.</summary>
    /// <param name="key">The key.</param>
    /// <param name="options">Read options.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>The entry or null.</returns>
    public ValueTask<KeyValue?> GetKeyValueAsync(string key, ReadOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        return GetKeyValueAsync(Encoding.UTF8.GetBytes(key), options, cancellationToken);
    }

    /// <summary>Scans a range as of <see cref="Seq"/> with this transaction's writes (as of this call) merged in.</summary>
    /// <param name="range">The range.</param>
    /// <param name="options">Scan options.</param>
    /// <returns>An iterator.</returns>
    public SlateIterator Scan(KeyRange range, ScanOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(range);
        var descending = options?.Order == IterationOrder.Descending;
        var read = Convert.Read(options);
        return new SlateIterator(_txn.Scan(range.Inner, read, descending, read.CacheBlocks));
    }

    /// <summary>Scans the keys that start with <paramref name="prefix"/>; <paramref name="subrange"/> bounds are suffixes appended to the prefix.</summary>
    /// <param name="prefix">The prefix.</param>
    /// <param name="subrange">Suffix bounds, or null for the whole prefix.</param>
    /// <param name="options">Scan options.</param>
    /// <returns>An iterator.</returns>
    public SlateIterator ScanPrefix(ReadOnlyMemory<byte> prefix, KeyRange? subrange = null, ScanOptions? options = null) =>
        Scan(SlateClient.PrefixRange(prefix, subrange), options);

    /// <summary>Commits the buffered writes atomically with one sequence number.</summary>
    /// <param name="cancellationToken">Cancels before the batch is submitted (not after).</param>
    /// <returns>The write handle, or null when the transaction wrote nothing.</returns>
    /// <exception cref="SlateException">Transaction on a conflict (nothing applied); Invalid when already completed.</exception>
    public async ValueTask<WriteHandle?> CommitAsync(CancellationToken cancellationToken = default)
    {
        var r = await _txn.CommitAsync(cancellationToken).ConfigureAwait(false);
        return FSharpOption<E.WriteResult>.get_IsSome(r) ? new WriteHandle(_db, r.Value.Seq, r.Value.CreateTs) : null;
    }

    /// <summary>Discards the buffered writes; the transaction cannot be used afterwards.</summary>
    public void Rollback() => _txn.Rollback();

    /// <summary>Rolls back an uncommitted transaction; otherwise does nothing.</summary>
    public void Dispose() => ((IDisposable)_txn).Dispose();
}
