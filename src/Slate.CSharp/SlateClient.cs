using System.Text;
using Microsoft.FSharp.Core;
using E = Slate.Engine;
using M = Slate.Model;

namespace Slate;

/// <summary>The writer of one database (one per path): puts, deletes, merges, reads, scans, flushes.</summary>
public sealed class SlateClient : IAsyncDisposable, IDisposable
{
    private readonly E.Db _db;

    private SlateClient(E.Db db) => _db = db;

    /// <summary>The engine writer (for the F# API and tools).</summary>
    internal E.Db Engine => _db;

    /// <summary>Opens or creates the database at <paramref name="path"/>, fencing any older writer and replaying the WAL.</summary>
    /// <param name="path">Database path inside the store.</param>
    /// <param name="store">The object store.</param>
    /// <param name="options">Settings, or null for the defaults.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>The open client.</returns>
    public static async Task<SlateClient> OpenAsync(string path, ObjectStore store, SlateOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(store);
        var db = await E.Db.OpenAsync(store.Inner, path, ToEngine(options ?? new SlateOptions()), cancellationToken).ConfigureAwait(false);
        return new SlateClient(db);
    }

    /// <summary>Opens or creates the database at <paramref name="path"/> in the store named by <paramref name="storeUrl"/>.</summary>
    /// <param name="path">Database path inside the store.</param>
    /// <param name="storeUrl">A URL for <see cref="ObjectStore.Resolve"/>.</param>
    /// <param name="options">Settings, or null for the defaults.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>The open client.</returns>
    public static Task<SlateClient> OpenAsync(string path, string storeUrl, SlateOptions? options = null, CancellationToken cancellationToken = default) =>
        OpenAsync(path, ObjectStore.Resolve(storeUrl), options, cancellationToken);

    internal static E.DbOptions ToEngine(SlateOptions o)
    {
        var d = E.DbOptionsModule.defaults;
        if (o.Compactor?.MergeOperator is { } cm && !ReferenceEquals(cm, o.MergeOperator))
            throw new SlateException(SlateErrorKind.Invalid,
                "invalid configuration: Compactor.MergeOperator differs from SlateOptions.MergeOperator (the embedded compactor uses SlateOptions.MergeOperator)");
        return new E.DbOptions(
            o.FlushInterval.HasValue ? FSharpOption<TimeSpan>.Some(o.FlushInterval.Value) : FSharpOption<TimeSpan>.None,
            o.WalEnabled,
            o.FlushOnDurableWait,
            o.ManifestPollInterval,
            o.ManifestUpdateTimeout,
            o.MinFilterKeys,
            o.BloomBitsPerKey,
            o.L0SstSizeBytes,
            o.L0MaxSsts,
            o.L0FlushParallelism,
            o.MaxUnflushedBytes,
            (M.CompressionCodec)(int)o.Compression,
            o.BlockSize,
            o.DefaultTtl.HasValue ? FSharpOption<TimeSpan>.Some(o.DefaultTtl.Value) : FSharpOption<TimeSpan>.None,
            o.BlockCacheBytes,
            o.MetaCacheBytes,
            o.MergeOperator is null ? FSharpOption<FSharpFunc<byte[], FSharpFunc<FSharpOption<byte[]>, FSharpFunc<byte[], byte[]>>>>.None
                : FSharpOption<FSharpFunc<byte[], FSharpFunc<FSharpOption<byte[]>, FSharpFunc<byte[], byte[]>>>>.Some(Convert.Merge(o.MergeOperator)),
            o.TimeProvider ?? d.TimeProvider,
            d.RandomSeed,
            o.ObjectStoreMaxRetries.HasValue ? FSharpOption<int>.Some(o.ObjectStoreMaxRetries.Value) : FSharpOption<int>.None,
            o.Compactor is null ? FSharpOption<E.CompactorSettings>.None : FSharpOption<E.CompactorSettings>.Some(o.Compactor.ToEngine()),
            o.GarbageCollector is null ? FSharpOption<E.GcSettings>.None : FSharpOption<E.GcSettings>.Some(o.GarbageCollector.ToEngine()),
            o.LoggerFactory ?? Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance);
    }

    private async ValueTask<WriteHandle> Submit(Microsoft.FSharp.Collections.FSharpList<E.WriteOp> ops, CancellationToken ct)
    {
        var r = await _db.WriteAsync(ops, ct).ConfigureAwait(false);
        return new WriteHandle(_db, r.Seq, r.CreateTs);
    }

    private static Microsoft.FSharp.Collections.FSharpList<E.WriteOp> One(E.WriteOp op) =>
        Microsoft.FSharp.Collections.FSharpList<E.WriteOp>.Cons(op, Microsoft.FSharp.Collections.FSharpList<E.WriteOp>.Empty);

    /// <summary>Writes a value; returns once it is visible (not yet durable).</summary>
    /// <param name="key">The key (1..65535 bytes).</param>
    /// <param name="value">The value.</param>
    /// <param name="options">Put options.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>The write handle.</returns>
    public ValueTask<WriteHandle> PutAsync(ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> value, PutOptions? options = null, CancellationToken cancellationToken = default) =>
        Submit(One(E.WriteOp.NewPut(Convert.Key(key), value.ToArray(), Convert.Ttl(options))), cancellationToken);

    /// <summary>Writes a UTF-8 value.</summary>
    /// <param name="key">The key.</param>
    /// <param name="value">The value.</param>
    /// <param name="options">Put options.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>The write handle.</returns>
    public ValueTask<WriteHandle> PutAsync(string key, string value, PutOptions? options = null, CancellationToken cancellationToken = default) =>
        PutAsync(Encoding.UTF8.GetBytes(key), Encoding.UTF8.GetBytes(value), options, cancellationToken);

    /// <summary>Deletes a key (writes a tombstone).</summary>
    /// <param name="key">The key.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>The write handle.</returns>
    public ValueTask<WriteHandle> DeleteAsync(ReadOnlyMemory<byte> key, CancellationToken cancellationToken = default) =>
        Submit(One(E.WriteOp.NewDelete(Convert.Key(key))), cancellationToken);

    /// <summary>Deletes a UTF-8 key.</summary>
    /// <param name="key">The key.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>The write handle.</returns>
    public ValueTask<WriteHandle> DeleteAsync(string key, CancellationToken cancellationToken = default) =>
        DeleteAsync(Encoding.UTF8.GetBytes(key), cancellationToken);

    /// <summary>Appends a merge operand; Invalid when no merge operator is configured.</summary>
    /// <param name="key">The key.</param>
    /// <param name="operand">The operand.</param>
    /// <param name="options">Put options.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>The write handle.</returns>
    public ValueTask<WriteHandle> MergeAsync(ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> operand, PutOptions? options = null, CancellationToken cancellationToken = default) =>
        Submit(One(E.WriteOp.NewMerge(Convert.Key(key), operand.ToArray(), Convert.Ttl(options))), cancellationToken);

    /// <summary>Appends a UTF-8 merge operand to a UTF-8 key.</summary>
    /// <param name="key">The key.</param>
    /// <param name="operand">The operand.</param>
    /// <param name="options">Put options.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>The write handle.</returns>
    public ValueTask<WriteHandle> MergeAsync(string key, string operand, PutOptions? options = null, CancellationToken cancellationToken = default) =>
        MergeAsync(Encoding.UTF8.GetBytes(key), Encoding.UTF8.GetBytes(operand), options, cancellationToken);

    /// <summary>Applies a batch atomically with one sequence number; the batch is consumed.</summary>
    /// <param name="batch">The batch.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>The write handle.</returns>
    public ValueTask<WriteHandle> WriteAsync(WriteBatch batch, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(batch);
        return Submit(batch.Consume(), cancellationToken);
    }

    /// <summary>The latest visible value; null when missing or deleted (an empty value is an empty array).</summary>
    /// <param name="key">The key.</param>
    /// <param name="options">Read options.</param>
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
        var r = await _db.GetAsync(Convert.Key(key), Convert.Read(options), cancellationToken).ConfigureAwait(false);
        return r is null ? null : KeyValue.Of(r.Value);
    }

    /// <summary>The latest visible value of a UTF-8 key with its metadata.</summary>
    /// <param name="key">The key.</param>
    /// <param name="options">Read options.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>The entry or null.</returns>
    public ValueTask<KeyValue?> GetKeyValueAsync(string key, ReadOptions? options = null, CancellationToken cancellationToken = default) =>
        GetKeyValueAsync(Encoding.UTF8.GetBytes(key), options, cancellationToken);

    internal async ValueTask<KeyValue?> GetKeyValueAtAsync(ReadOnlyMemory<byte> key, ReadOptions? options, ulong seq, CancellationToken ct)
    {
        var r = await _db.GetAtAsync(Convert.Key(key), Convert.Read(options), seq, ct).ConfigureAwait(false);
        return r is null ? null : KeyValue.Of(r.Value);
    }

    /// <summary>Scans a range.</summary>
    /// <param name="range">The range.</param>
    /// <param name="options">Scan options.</param>
    /// <returns>An iterator.</returns>
    public SlateIterator Scan(KeyRange range, ScanOptions? options = null) => ScanAt(range, options, null);

    /// <summary>Scans the keys that start with <paramref name="prefix"/>; <paramref name="subrange"/> bounds are suffixes appended to the prefix.</summary>
    /// <param name="prefix">The prefix.</param>
    /// <param name="subrange">Suffix bounds, or null for the whole prefix.</param>
    /// <param name="options">Scan options.</param>
    /// <returns>An iterator.</returns>
    public SlateIterator ScanPrefix(ReadOnlyMemory<byte> prefix, KeyRange? subrange = null, ScanOptions? options = null) =>
        ScanAt(PrefixRange(prefix, subrange), options, null);

    /// <summary>Scans the keys that start with a UTF-8 prefix.</summary>
    /// <param name="prefix">The prefix.</param>
    /// <param name="subrange">Suffix bounds, or null.</param>
    /// <param name="options">Scan options.</param>
    /// <returns>An iterator.</returns>
    public SlateIterator ScanPrefix(string prefix, KeyRange? subrange = null, ScanOptions? options = null) =>
        ScanPrefix(Encoding.UTF8.GetBytes(prefix), subrange, options);

    internal static KeyRange PrefixRange(ReadOnlyMemory<byte> prefix, KeyRange? subrange) =>
        subrange is null ? KeyRange.Prefix(prefix.Span) : KeyRange.Of(M.KeyRangeModule.withinPrefix(prefix.ToArray(), subrange.Inner));

    internal SlateIterator ScanAt(KeyRange range, ScanOptions? options, ulong? snapshotSeq)
    {
        ArgumentNullException.ThrowIfNull(range);
        var view = _db.ScanView(Convert.Read(options), snapshotSeq.HasValue ? FSharpOption<ulong>.Some(snapshotSeq.Value) : FSharpOption<ulong>.None);
        var descending = options?.Order == IterationOrder.Descending;
        var it = new E.DbIterator(_db.Tables, view.Item1, range.Inner, view.Item2, descending, Convert.Read(options).CacheBlocks,
            _db.MergeOperator, FuncConvert.FromAction(() => _db.CheckOpen()), Convert.ReadAhead(options));
        return new SlateIterator(it);
    }

    /// <summary>Flushes the WAL (until durable) or the memtable (to L0).</summary>
    /// <param name="flushType">What to flush.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>A task.</returns>
    public Task FlushAsync(FlushType flushType = FlushType.Wal, CancellationToken cancellationToken = default) =>
        _db.FlushAsync(flushType == FlushType.Wal ? E.FlushKind.Wal : E.FlushKind.MemTable, cancellationToken);

    /// <summary>Creates a checkpoint: <see cref="CheckpointScope.All"/> covers every write made before the call (the WAL and memtable are flushed first); <see cref="CheckpointScope.Durable"/> only what is already durable.</summary>
    /// <param name="scope">What the checkpoint covers.</param>
    /// <param name="options">Lifetime, source and name.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>The checkpoint id and the manifest it pins.</returns>
    public async Task<CheckpointResult> CreateCheckpointAsync(CheckpointScope scope = CheckpointScope.All, CheckpointOptions? options = null, CancellationToken cancellationToken = default)
    {
        var r = await _db.CreateCheckpointAsync((E.CheckpointScope)(int)scope, CheckpointOptions.ToEngine(options), cancellationToken).ConfigureAwait(false);
        return new CheckpointResult(M.UuidModule.toGuid(r.Item2.Id), r.Item2.ManifestId);
    }

    /// <summary>A consistent read view at the current sequence number.</summary>
    /// <returns>The snapshot; dispose it to release it.</returns>
    public SlateSnapshot Snapshot() => new(this, _db.RegisterSnapshot());

    internal void ReleaseSnapshot(ulong seq) => _db.ReleaseSnapshot(seq);

    /// <summary>Starts an optimistic transaction reading at the current sequence number.</summary>
    /// <param name="isolation">Snapshot (write-write conflicts) or SerializableSnapshot (also read-write).</param>
    /// <returns>The transaction; dispose it to roll back if it was not committed.</returns>
    public SlateTransaction BeginTransaction(IsolationLevel isolation = IsolationLevel.Snapshot) =>
        new(_db, E.Transaction.Begin(_db, (E.IsolationLevel)(int)isolation));

    /// <summary>The client's status.</summary>
    public DbStatus Status
    {
        get
        {
            var r = _db.CloseReason;
            return new DbStatus(_db.DurableSeq, _db.ManifestId, FSharpOption<CloseReason>.get_IsSome(r) ? r.Value : null);
        }
    }

    /// <summary>Closes the client, flushing per <paramref name="options"/> (default: the memtable to L0). Afterwards every call throws Closed.</summary>
    /// <param name="options">Close options.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>A task.</returns>
    public Task CloseAsync(CloseOptions? options = null, CancellationToken cancellationToken = default)
    {
        var flush = (options ?? new CloseOptions()).FlushOnClose;
        var kind = flush switch
        {
            null => FSharpOption<E.FlushKind>.None,
            FlushType.Wal => FSharpOption<E.FlushKind>.Some(E.FlushKind.Wal),
            _ => FSharpOption<E.FlushKind>.Some(E.FlushKind.MemTable),
        };
        return _db.CloseAsync(kind, cancellationToken);
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        if (FSharpOption<CloseReason>.get_IsNone(_db.CloseReason))
        {
            try { await CloseAsync().ConfigureAwait(false); }
            catch (SlateException e) when (e.Kind == SlateErrorKind.Closed) { }
        }
    }

    /// <inheritdoc/>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();
}
