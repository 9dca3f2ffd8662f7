using System.Text;
using Microsoft.FSharp.Core;
using M = Slate.Model;

namespace Slate;

/// <summary>A key with its value and metadata.</summary>
/// <param name="Key">The key.</param>
/// <param name="Value">The value (empty, never null, for an empty value).</param>
/// <param name="Seq">Sequence number of the write.</param>
/// <param name="CreateTs">Creation time in ms since the Unix epoch.</param>
/// <param name="ExpireTs">Expiry time in ms since the Unix epoch, if any (expired rows are still returned until a flush or compaction removes them).</param>
public sealed record KeyValue(ReadOnlyMemory<byte> Key, ReadOnlyMemory<byte> Value, ulong Seq, long CreateTs, long? ExpireTs)
{
    /// <summary>The key as UTF-8 text.</summary>
    public string KeyString => Encoding.UTF8.GetString(Key.Span);

    /// <summary>The value as UTF-8 text.</summary>
    public string ValueString => Encoding.UTF8.GetString(Value.Span);

    internal static KeyValue Of(M.RowEntry row)
    {
        var value = row.Value is M.RowValue.Value v ? v.Item : Array.Empty<byte>();
        var create = FSharpOption<long>.get_IsSome(row.CreateTs) ? row.CreateTs.Value : 0L;
        long? expire = FSharpOption<long>.get_IsSome(row.ExpireTs) ? row.ExpireTs.Value : null;
        return new KeyValue(row.Key, value, row.Seq, create, expire);
    }

    /// <summary>Equal when the key bytes, value bytes, Seq, CreateTs and ExpireTs are equal.</summary>
    public bool Equals(KeyValue? other) =>
        other is not null
        && Seq == other.Seq
        && CreateTs == other.CreateTs
        && ExpireTs == other.ExpireTs
        && Key.Span.SequenceEqual(other.Key.Span)
        && Value.Span.SequenceEqual(other.Value.Span);

    /// <summary>A hash of the key and value bytes and the metadata (consistent with <see cref="Equals(KeyValue?)"/>).</summary>
    public override int GetHashCode()
    {
        var h = new HashCode();
        h.AddBytes(Key.Span);
        h.Add(Key.Length);
        h.AddBytes(Value.Span);
        h.Add(Seq);
        h.Add(CreateTs);
        h.Add(ExpireTs);
        return h.ToHashCode();
    }
}

/// <summary>A range of keys in unsigned byte order.</summary>
public sealed class KeyRange
{
    internal M.BytesRange Inner { get; }

    private KeyRange(M.BytesRange inner) => Inner = inner;

    /// <summary>Every key.</summary>
    public static KeyRange All { get; } = new(M.KeyRangeModule.all);

    /// <summary>A range; null bounds are unbounded, an empty inclusive start is the same as unbounded.</summary>
    /// <param name="start">Start key or null.</param>
    /// <param name="end">End key or null.</param>
    /// <param name="startInclusive">Whether the start key is included.</param>
    /// <param name="endInclusive">Whether the end key is included.</param>
    /// <returns>The range.</returns>
    /// <exception cref="SlateException">Invalid when start &gt; end or the range is empty.</exception>
    public static KeyRange Create(byte[]? start, byte[]? end, bool startInclusive = true, bool endInclusive = false)
    {
        var s = start is null ? M.KeyBound.Unbounded : startInclusive ? M.KeyBound.NewIncluded((byte[])start.Clone()) : M.KeyBound.NewExcluded((byte[])start.Clone());
        var e = end is null ? M.KeyBound.Unbounded : endInclusive ? M.KeyBound.NewIncluded((byte[])end.Clone()) : M.KeyBound.NewExcluded((byte[])end.Clone());
        var r = M.KeyRangeModule.ofBounds(s, e);
        if (r.IsError) throw new SlateException(SlateErrorKind.Invalid, r.ErrorValue);
        return new KeyRange(r.ResultValue);
    }

    /// <summary>A range of UTF-8 keys; null bounds are unbounded.</summary>
    /// <param name="start">Start key or null.</param>
    /// <param name="end">End key or null.</param>
    /// <param name="startInclusive">Whether the start key is included.</param>
    /// <param name="endInclusive">Whether the end key is included.</param>
    /// <returns>The range.</returns>
    public static KeyRange Create(string? start, string? end, bool startInclusive = true, bool endInclusive = false) =>
        Create(start is null ? null : Encoding.UTF8.GetBytes(start), end is null ? null : Encoding.UTF8.GetBytes(end), startInclusive, endInclusive);

    /// <summary>Every key that starts with <paramref name="prefix"/>.</summary>
    /// <param name="prefix">The prefix.</param>
    /// <returns>The range.</returns>
    public static KeyRange Prefix(ReadOnlySpan<byte> prefix) => new(M.KeyRangeModule.prefix(prefix.ToArray()));

    /// <summary>Every key that starts with the UTF-8 <paramref name="prefix"/>.</summary>
    /// <param name="prefix">The prefix.</param>
    /// <returns>The range.</returns>
    public static KeyRange Prefix(string prefix) => Prefix(Encoding.UTF8.GetBytes(prefix));

    internal static KeyRange Of(M.BytesRange r) => new(r);

    /// <inheritdoc/>
    public override string ToString() => M.KeyRangeModule.describe(Inner);
}

/// <summary>A batch of writes applied atomically with one sequence number. Single use.</summary>
public sealed class WriteBatch
{
    private readonly List<Engine.WriteOp> _ops = new();
    internal bool Consumed { get; private set; }

    /// <summary>Number of operations.</summary>
    public int Count => _ops.Count;

    /// <summary>Adds a put; a later op on the same key replaces it.</summary>
    /// <param name="key">The key.</param>
    /// <param name="value">The value.</param>
    /// <param name="options">Put options.</param>
    /// <returns>This batch.</returns>
    public WriteBatch Put(ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> value, PutOptions? options = null)
    {
        CheckNotConsumed();
        _ops.Add(Engine.WriteOp.NewPut(Convert.Key(key), value.ToArray(), Convert.Ttl(options)));
        return this;
    }

    /// <summary>Adds a put of UTF-8 text.</summary>
    /// <param name="key">The key.</param>
    /// <param name="value">The value.</param>
    /// <param name="options">Put options.</param>
    /// <returns>This batch.</returns>
    public WriteBatch Put(string key, string value, PutOptions? options = null) =>
        Put(Encoding.UTF8.GetBytes(key), Encoding.UTF8.GetBytes(value), options);

    /// <summary>Adds a delete.</summary>
    /// <param name="key">The key.</param>
    /// <returns>This batch.</returns>
    public WriteBatch Delete(ReadOnlyMemory<byte> key)
    {
        CheckNotConsumed();
        _ops.Add(Engine.WriteOp.NewDelete(Convert.Key(key)));
        return this;
    }

    /// <summary>Adds a delete of a UTF-8 key.</summary>
    /// <param name="key">The key.</param>
    /// <returns>This batch.</returns>
    public WriteBatch Delete(string key) => Delete(Encoding.UTF8.GetBytes(key));

    /// <summary>Adds a merge operand; merges on one key accumulate.</summary>
    /// <param name="key">The key.</param>
    /// <param name="operand">The operand.</param>
    /// <param name="options">Put options.</param>
    /// <returns>This batch.</returns>
    public WriteBatch Merge(ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> operand, PutOptions? options = null)
    {
        CheckNotConsumed();
        _ops.Add(Engine.WriteOp.NewMerge(Convert.Key(key), operand.ToArray(), Convert.Ttl(options)));
        return this;
    }

    /// <summary>Adds a merge operand of UTF-8 text.</summary>
    /// <param name="key">The key.</param>
    /// <param name="operand">The operand.</param>
    /// <param name="options">Put options.</param>
    /// <returns>This batch.</returns>
    public WriteBatch Merge(string key, string operand, PutOptions? options = null) =>
        Merge(Encoding.UTF8.GetBytes(key), Encoding.UTF8.GetBytes(operand), options);

    internal Microsoft.FSharp.Collections.FSharpList<Engine.WriteOp> Consume()
    {
        CheckNotConsumed();
        if (_ops.Count == 0) throw new SlateException(SlateErrorKind.Invalid, "write batch is empty");
        Consumed = true;
        return Microsoft.FSharp.Collections.ListModule.OfSeq(_ops);
    }

    private void CheckNotConsumed()
    {
        if (Consumed) throw new SlateException(SlateErrorKind.Invalid, "write batch has already been consumed");
    }
}

/// <summary>The result of a write: visible now, durable after <see cref="AwaitDurableAsync"/>.</summary>
public sealed class WriteHandle
{
    private readonly Engine.Db _db;

    internal WriteHandle(Engine.Db db, ulong seq, long createTs)
    {
        _db = db;
        Seq = seq;
        CreateTs = createTs;
    }

    /// <summary>The write's sequence number.</summary>
    public ulong Seq { get; }

    /// <summary>The write's creation time in ms since the Unix epoch.</summary>
    public long CreateTs { get; }

    /// <summary>Completes when every write up to <see cref="Seq"/> is in object storage.</summary>
    /// <param name="cancellationToken">Cancels the wait (not the write).</param>
    /// <returns>A task.</returns>
    /// <exception cref="SlateException">Closed when the client closes or is fenced first.</exception>
    public Task AwaitDurableAsync(CancellationToken cancellationToken = default) => _db.AwaitDurableAsync(Seq, cancellationToken);
}

/// <summary>Status of a client.</summary>
/// <param name="DurableSeq">Highest durable sequence number.</param>
/// <param name="ManifestId">Latest manifest id the client knows.</param>
/// <param name="CloseReason">Why it is closed, or null while open.</param>
public sealed record DbStatus(ulong DurableSeq, ulong ManifestId, CloseReason? CloseReason);

internal static class Convert
{
    internal static byte[] Key(ReadOnlyMemory<byte> key)
    {
        var k = key.ToArray();
        Engine.Validate.key(k);
        return k;
    }

    internal static Engine.Ttl Ttl(PutOptions? o)
    {
        var t = o?.Ttl ?? Slate.Ttl.Default;
        return t.Kind switch
        {
            0 => Engine.Ttl.Default,
            1 => Engine.Ttl.NoExpiry,
            2 => Engine.Ttl.NewExpireAfter(t.After),
            _ => Engine.Ttl.NewExpireAt(t.At),
        };
    }

    internal static Engine.ReadOpts Read(ReadOptions? o) =>
        new(o?.Durability == DurabilityLevel.Remote ? Engine.Durability.Remote : Engine.Durability.Memory, o?.Dirty ?? false, o?.CacheBlocks ?? true);

    internal static Engine.ReadAhead ReadAhead(ScanOptions? o) =>
        new(o?.ReadAheadBytes ?? 1L, o?.MaxFetchTasks ?? 1);

    internal static Engine.ReadOpts Read(ScanOptions? o) =>
        new(o?.Durability == DurabilityLevel.Remote ? Engine.Durability.Remote : Engine.Durability.Memory, o?.Dirty ?? false, o?.CacheBlocks ?? false);

    internal static FSharpFunc<byte[], FSharpFunc<FSharpOption<byte[]>, FSharpFunc<byte[], byte[]>>> Merge(IMergeOperator op) =>
        FuncConvert.FromFunc<byte[], FSharpOption<byte[]>, byte[], byte[]>((key, existing, operand) =>
        {
            var has = FSharpOption<byte[]>.get_IsSome(existing);
            return op.Merge(key, has ? existing.Value : ReadOnlySpan<byte>.Empty, has, operand);
        });
}
