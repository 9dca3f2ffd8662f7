using System.Buffers.Binary;

namespace Slate.Bench;

/// <summary>
/// The common data set of BENCHMARKS.md: 20-byte keys (big-endian u64 id + 12 ASCII '0'),
/// 400-byte values cut from a seeded 1 MiB random buffer, and the seeded key orders that every
/// engine replays identically.
/// </summary>
public sealed class Workload
{
    public const int KeySize = 20;
    public const int ValueSize = 400;
    public const int BufferSize = 1 << 20;

    public const int LoadSeed = 1;
    public const int ReadSeed = 2;
    public const int BufferSeed = 3;
    public const int DurableSeed = 4;

    /// <summary>The incompressible source of values.</summary>
    public byte[] Buffer { get; }

    /// <summary>Records loaded (ids 0 .. Records-1).</summary>
    public int Records { get; }

    /// <summary>Durable puts (ids Records .. Records+Durable-1, in a seeded random order).</summary>
    public int Durable { get; }

    /// <summary>Point reads.</summary>
    public int Reads { get; }

    /// <summary>fillrandom order: a seeded random permutation of 0..Records-1 (each key once).</summary>
    public int[] LoadOrder { get; }

    /// <summary>Uniform random ids in [0, Records), with replacement.</summary>
    public int[] ReadIds { get; }

    /// <summary>Ids of the durable run.</summary>
    public int[] DurableIds { get; }

    public Workload(int records, int reads, int durable)
    {
        Records = records;
        Reads = reads;
        Durable = durable;
        Buffer = new byte[BufferSize];
        new Random(BufferSeed).NextBytes(Buffer);

        LoadOrder = new int[records];
        for (var i = 0; i < records; i++) LoadOrder[i] = i;
        var lr = new Random(LoadSeed);
        for (var i = records - 1; i > 0; i--)
        {
            var j = lr.Next(i + 1);
            (LoadOrder[i], LoadOrder[j]) = (LoadOrder[j], LoadOrder[i]);
        }

        ReadIds = new int[reads];
        var rr = new Random(ReadSeed);
        for (var i = 0; i < reads; i++) ReadIds[i] = rr.Next(records);

        DurableIds = new int[durable];
        for (var i = 0; i < durable; i++) DurableIds[i] = records + i;
        var dr = new Random(DurableSeed);
        for (var i = durable - 1; i > 0; i--)
        {
            var j = dr.Next(i + 1);
            (DurableIds[i], DurableIds[j]) = (DurableIds[j], DurableIds[i]);
        }
    }

    /// <summary>Writes the key of <paramref name="id"/> into <paramref name="dst"/> (20 bytes).</summary>
    public static void WriteKey(Span<byte> dst, long id)
    {
        BinaryPrimitives.WriteUInt64BigEndian(dst, (ulong)id);
        dst.Slice(8, 12).Fill((byte)'0');
    }

    /// <summary>A fresh key array.</summary>
    public static byte[] NewKey(long id)
    {
        var k = new byte[KeySize];
        WriteKey(k, id);
        return k;
    }

    /// <summary>Offset of the value of <paramref name="id"/> inside <see cref="Buffer"/>.</summary>
    public static int ValueOffset(long id) =>
        (int)((ulong)id * 2654435761UL % (ulong)(BufferSize - ValueSize + 1));

    /// <summary>The value of <paramref name="id"/> (a view of the shared buffer, never written to).</summary>
    public ReadOnlyMemory<byte> Value(long id) => new(Buffer, ValueOffset(id), ValueSize);

    /// <summary>True when <paramref name="actual"/> is the value written for <paramref name="id"/>.</summary>
    public bool IsValueOf(long id, ReadOnlySpan<byte> actual) =>
        actual.SequenceEqual(new ReadOnlySpan<byte>(Buffer, ValueOffset(id), ValueSize));
}
