/// Per-block compression frames (SPEC §4.5). The frame formats are SlateDB's and are part of the
/// on-disk format: None = body as is; Snappy = raw Snappy block; Zlib = RFC 1950 stream;
/// Lz4 = `uncompressed_len:u32le ‖ LZ4 block`; Zstd = standard zstd frame (level 3, content size,
/// no checksum).
namespace Slate.Model

open System
open System.Buffers.Binary
open System.IO
open System.IO.Compression

/// Per-thread zstd contexts: creating one costs far more than compressing a 4 KiB block. Reusing
/// them is invisible to callers (each call resets the session; parameters stay fixed).
[<Sealed; AbstractClass>]
type internal ZstdContexts =
    [<ThreadStatic; DefaultValue>]
    static val mutable private compressor: ZstdSharp.Compressor

    [<ThreadStatic; DefaultValue>]
    static val mutable private decompressor: ZstdSharp.Decompressor

    /// This thread's level-3 compressor (content size on, checksum off).
    static member Compressor: ZstdSharp.Compressor =
        if isNull ZstdContexts.compressor then
            let c = new ZstdSharp.Compressor(3) // SlateDB's level (Compression.ZstdLevel)
            c.SetParameter(ZstdSharp.Unsafe.ZSTD_cParameter.ZSTD_c_contentSizeFlag, 1)
            c.SetParameter(ZstdSharp.Unsafe.ZSTD_cParameter.ZSTD_c_checksumFlag, 0)
            ZstdContexts.compressor <- c

        ZstdContexts.compressor

    /// This thread's decompressor.
    static member Decompressor: ZstdSharp.Decompressor =
        if isNull ZstdContexts.decompressor then
            ZstdContexts.decompressor <- new ZstdSharp.Decompressor()

        ZstdContexts.decompressor

/// Compression and decompression of block bodies.
[<RequireQualifiedAccess>]
module Compression =
    /// Largest decompressed size accepted (1 GiB): a frame declaring more is rejected as a
    /// probable decompression bomb.
    [<Literal>]
    let MaxDecompressedSize = 1073741824

    // Largest output per input byte a valid frame can produce (checked before allocating, so a
    // small corrupt frame cannot make us allocate up to the cap): a 3-byte Snappy copy yields at
    // most 64 bytes; an LZ4 length-extension byte adds at most 255.
    [<Literal>]
    let private SnappyMaxRatio = 22L

    [<Literal>]
    let private Lz4MaxRatio = 256L

    /// The zstd level SlateDB uses.
    [<Literal>]
    let ZstdLevel = 3

    /// The codec's lower-case name, as used in error messages.
    let codecName (codec: CompressionCodec) : string =
        match codec with
        | CompressionCodec.None -> "none"
        | CompressionCodec.Snappy -> "snappy"
        | CompressionCodec.Zlib -> "zlib"
        | CompressionCodec.Lz4 -> "lz4"
        | CompressionCodec.Zstd -> "zstd"
        | other -> sprintf "codec %d" (int other)

    let private zlibCompress (body: ReadOnlySpan<byte>) : byte[] =
        if body.IsEmpty then
            // ZLibStream writes nothing at all for an empty input; this is zlib's own empty stream.
            [| 0x78uy; 0x9Cuy; 0x03uy; 0x00uy; 0x00uy; 0x00uy; 0x00uy; 0x01uy |]
        else
            use ms = new MemoryStream(body.Length / 2 + 64)

            do
                use z = new ZLibStream(ms, CompressionLevel.Optimal, true)
                z.Write body

            ms.ToArray()

    let private lz4Compress (body: ReadOnlySpan<byte>) : byte[] =
        let bound = K4os.Compression.LZ4.LZ4Codec.MaximumOutputSize body.Length
        let buf = Array.zeroCreate<byte> (4 + bound)
        BinaryPrimitives.WriteUInt32LittleEndian(Span<byte>(buf, 0, 4), uint32 body.Length)

        let n =
            if body.Length = 0 then
                // An empty input is the single token byte 0x00 (what LZ4 block encoders emit).
                buf[4] <- 0uy
                1
            else
                K4os.Compression.LZ4.LZ4Codec.Encode(body, Span<byte>(buf, 4, bound))

        if n <= 0 then
            invalidOp "LZ4 encoding failed"

        Array.sub buf 0 (4 + n)

    let private zstdCompress (body: ReadOnlySpan<byte>) : byte[] =
        let c = ZstdContexts.Compressor
        let out = Array.zeroCreate<byte> (ZstdSharp.Compressor.GetCompressBound body.Length)
        let n = c.Wrap(body, Span<byte>(out))
        if n = out.Length then out else Array.sub out 0 n

    /// Compresses a block body into the codec's frame. Throws `ArgumentException` for an unknown
    /// codec value (a bug: codecs come from validated settings or decoded metadata).
    let compress (codec: CompressionCodec) (body: ReadOnlySpan<byte>) : byte[] =
        match codec with
        | CompressionCodec.None -> body.ToArray()
        | CompressionCodec.Snappy -> Snappier.Snappy.CompressToArray body
        | CompressionCodec.Zlib -> zlibCompress body
        | CompressionCodec.Lz4 -> lz4Compress body
        | CompressionCodec.Zstd -> zstdCompress body
        | other -> invalidArg "codec" (sprintf "unknown compression codec %d" (int other))

    let private fail (codec: CompressionCodec) (detail: string) : Result<byte[], DecodeError> =
        Error(DecodeError.Decompression(codecName codec + " frame", detail))

    let private tooLarge (codec: CompressionCodec) (declared: uint64) : Result<byte[], DecodeError> =
        fail codec (sprintf "declared size %d exceeds the limit of %d bytes" declared MaxDecompressedSize)

    let private snappyDecompress (frame: ReadOnlySpan<byte>) : Result<byte[], DecodeError> =
        let declared = Snappier.Snappy.GetUncompressedLength frame

        if declared < 0 || declared > MaxDecompressedSize then
            tooLarge CompressionCodec.Snappy (uint64 (max declared 0))
        elif int64 declared > SnappyMaxRatio * int64 frame.Length then
            fail
                CompressionCodec.Snappy
                (sprintf "declared size %d impossible for a %d-byte frame" declared frame.Length)
        else
            let out = Array.zeroCreate<byte> declared
            let n = Snappier.Snappy.Decompress(frame, Span<byte>(out))

            if n <> declared then
                fail CompressionCodec.Snappy (sprintf "produced %d bytes, header declared %d" n declared)
            else
                Ok out

    let private adler32 (data: ReadOnlySpan<byte>) : uint32 =
        let mutable a = 1u
        let mutable b = 0u
        let mutable i = 0

        while i < data.Length do
            let stop = min data.Length (i + 5552)

            while i < stop do
                a <- a + uint32 data[i]
                b <- b + a
                i <- i + 1

            a <- a % 65521u
            b <- b % 65521u

        (b <<< 16) ||| a

    let private zlibDecompress (frame: ReadOnlySpan<byte>) : Result<byte[], DecodeError> =
        if frame.Length < 6 then
            fail CompressionCodec.Zlib (sprintf "frame of %d bytes is too short for a zlib stream" frame.Length)
        else
            use input = new MemoryStream(frame.ToArray(), false)
            use z = new ZLibStream(input, CompressionMode.Decompress)
            // Read straight into a growing output array (no intermediate chunk buffer).
            let mutable out =
                Array.zeroCreate<byte> (min MaxDecompressedSize (max 256 (frame.Length * 4)))

            let mutable len = 0
            let mutable fin = false
            let mutable over = false

            while not fin && not over do
                if len = out.Length then
                    if out.Length >= MaxDecompressedSize then
                        // Full at the cap: any further byte is over the limit.
                        if z.ReadByte() >= 0 then over <- true else fin <- true
                    else
                        let grown =
                            Array.zeroCreate (int (min (int64 MaxDecompressedSize) (2L * int64 out.Length)))

                        Buffer.BlockCopy(out, 0, grown, 0, len)
                        out <- grown

                if not fin && not over then
                    let n = z.Read(out, len, out.Length - len)
                    if n = 0 then fin <- true else len <- len + n

            if over then
                fail CompressionCodec.Zlib (sprintf "output exceeds the limit of %d bytes" MaxDecompressedSize)
            else
                // ZLibStream stops silently at the end of a truncated stream; the Adler-32 trailer
                // (the frame's last 4 bytes) proves the stream was complete.
                let stored = BinaryPrimitives.ReadUInt32BigEndian(frame.Slice(frame.Length - 4))
                let actual = adler32 (ReadOnlySpan<byte>(out, 0, len))

                if stored <> actual then
                    fail CompressionCodec.Zlib (sprintf "stream incomplete (Adler-32 %08x, trailer %08x)" actual stored)
                elif len = out.Length then
                    Ok out
                else
                    Ok(Array.sub out 0 len)

    let private lz4Decompress (frame: ReadOnlySpan<byte>) : Result<byte[], DecodeError> =
        if frame.Length < 4 then
            fail CompressionCodec.Lz4 (sprintf "frame of %d bytes has no length prefix" frame.Length)
        else
            let declared = BinaryPrimitives.ReadUInt32LittleEndian frame
            let block = frame.Slice 4

            if declared > uint32 MaxDecompressedSize then
                tooLarge CompressionCodec.Lz4 (uint64 declared)
            elif int64 declared > Lz4MaxRatio * int64 block.Length + 16L then
                fail
                    CompressionCodec.Lz4
                    (sprintf "declared size %d impossible for a %d-byte block" declared block.Length)
            elif declared = 0u then
                // The empty body encodes as nothing or as the single empty-literal token.
                if block.Length = 0 || (block.Length = 1 && block[0] = 0uy) then
                    Ok [||]
                else
                    fail CompressionCodec.Lz4 "non-empty block for a declared length of 0"
            else
                let out = Array.zeroCreate<byte> (int declared)
                let n = K4os.Compression.LZ4.LZ4Codec.Decode(block, Span<byte>(out))

                if n < 0 then
                    fail CompressionCodec.Lz4 "malformed LZ4 block"
                elif n <> int declared then
                    fail CompressionCodec.Lz4 (sprintf "produced %d bytes, prefix declared %d" n declared)
                else
                    Ok out

    let private zstdDecompress (frame: ReadOnlySpan<byte>) : Result<byte[], DecodeError> =
        if frame.Length < 4 || BinaryPrimitives.ReadUInt32LittleEndian frame <> 0xFD2FB528u then
            fail CompressionCodec.Zstd "missing zstd frame magic"
        else
            // ZstdSharp's GetDecompressedSize is ZSTD_decompressBound: the exact content size when
            // the frame declares it, else an upper bound from the block headers (it walks every
            // block, so truncated frames fail here). Either way it caps the allocation honestly.
            let bound = ZstdSharp.Decompressor.GetDecompressedSize frame

            if bound > uint64 MaxDecompressedSize then
                tooLarge CompressionCodec.Zstd bound
            else
                let d = ZstdContexts.Decompressor
                let out = Array.zeroCreate<byte> (int bound)
                // libzstd checks a declared content size against the decoded length itself.
                let n = d.Unwrap(frame, Span<byte>(out))

                if n = out.Length then Ok out else Ok(Array.sub out 0 n)

    /// Decompresses a frame written by `compress` (or by SlateDB). Never throws on bad input:
    /// malformed frames, library failures and declared sizes above `MaxDecompressedSize` give
    /// `DecodeError.Decompression` naming the codec; an unknown codec value gives `Invalid`.
    let decompress (codec: CompressionCodec) (frame: ReadOnlySpan<byte>) : Result<byte[], DecodeError> =
        try
            match codec with
            | CompressionCodec.None -> Ok(frame.ToArray())
            | CompressionCodec.Snappy -> snappyDecompress frame
            | CompressionCodec.Zlib -> zlibDecompress frame
            | CompressionCodec.Lz4 -> lz4Decompress frame
            | CompressionCodec.Zstd -> zstdDecompress frame
            | other -> Error(DecodeError.Invalid("compression codec", sprintf "unknown codec %d" (int other)))
        with
        | :? InvalidDataException as e -> fail codec e.Message
        | :? ArgumentException as e -> fail codec e.Message
        | :? InvalidOperationException as e -> fail codec e.Message
        | :? IndexOutOfRangeException as e -> fail codec e.Message
        | :? OverflowException as e -> fail codec e.Message
        | :? NotSupportedException as e -> fail codec e.Message
        | :? IOException as e -> fail codec e.Message
        | :? ZstdSharp.ZstdException as e -> fail codec e.Message
