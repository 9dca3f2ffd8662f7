/// SST files (SPEC §4.4-§4.10): the builder (rows in, file bytes and `SsTableInfo` out) and the
/// parsers the read path applies to byte ranges of a file. Storage format: format version 2 is
/// written, versions 1 and 2 are read.
namespace Slate.Model

open System
open System.Buffers

/// Options of the SST builder.
type SstOptions =
    {
        /// Target data-block size (1024 ... 65536 in the engine; smaller in tests).
        BlockSize: int
        /// Codec of every block of the file.
        Compression: CompressionCodec
        /// Bloom filter bits per key; 0 disables filters.
        BloomBitsPerKey: int
        /// Filters are written only for SSTs with at least this many rows.
        MinFilterKeys: int
    }

/// A finished SST.
type BuiltSst =
    {
        /// The whole file.
        Bytes: byte[]
        /// The `SsTableInfo` stored in the file (and to be copied into the manifest).
        Info: SsTableInfo
        /// Number of rows.
        RowCount: int
        /// Number of data blocks.
        BlockCount: int
        /// Smallest and largest seq of the rows (0, 0 when empty).
        MinSeq: uint64
        /// Largest seq of the rows.
        MaxSeq: uint64
        /// Largest create_ts of the rows, if any carries one.
        MaxCreateTs: int64 option
    }

/// Builds one SST from rows given in file order: (key asc, seq desc) for compacted SSTs, seq asc for
/// WAL SSTs. A mutable builder behind a pure contract: the same rows give the same bytes.
type SstBuilder(options: SstOptions, sstType: SstType) =
    let out = Buffers.ArrayBufferWriter<byte>(64 * 1024)
    let block = BlockBuilder(options.BlockSize)
    let index = ResizeArray<BlockMeta>()
    let blockStats = ResizeArray<BlockStats>()
    let hashes = ResizeArray<uint64>()
    let mutable firstKey: byte[] option = None
    let mutable lastKey: byte[] = [||]
    let mutable prevBlockLastKey: byte[] option = None
    let mutable firstSeq = 0UL
    let mutable rows = 0
    let mutable minSeq = UInt64.MaxValue
    let mutable maxSeq = 0UL
    let mutable maxCreate: int64 option = None
    let mutable puts = 0UL
    let mutable deletes = 0UL
    let mutable merges = 0UL
    let mutable rawKey = 0UL
    let mutable rawVal = 0UL
    let mutable bPuts = 0
    let mutable bDeletes = 0
    let mutable bMerges = 0
    let mutable blockFirstKey: byte[] = [||]
    let mutable blockFirstSeq = 0UL
    let mutable finished = false

    let writeStored (body: ReadOnlySpan<byte>) : int =
        let frame = Compression.compress options.Compression body
        out.Write(ReadOnlySpan frame)
        let crc = out.GetSpan 4
        BigEndian.writeU32 crc (Crc32.ofArray frame)
        out.Advance 4
        frame.Length + 4

    let separator (prev: byte[]) (first: byte[]) : byte[] =
        if Bytes.equal prev first then
            first
        else
            let j = Bytes.commonPrefix (ReadOnlySpan prev) (ReadOnlySpan first)
            first[0..j]

    let flushBlock () =
        if not block.IsEmpty then
            let offset = uint64 out.WrittenCount

            let firstKeyOfIndex =
                match sstType with
                | SstType.Wal -> BigEndian.bytesOfU64 blockFirstSeq
                | _ ->
                    match prevBlockLastKey with
                    | None -> [||]
                    | Some p -> separator p blockFirstKey

            index.Add
                { Offset = offset
                  FirstKey = firstKeyOfIndex }

            blockStats.Add
                { NumPuts = uint16 bPuts
                  NumDeletes = uint16 bDeletes
                  NumMerges = uint16 bMerges }

            let body = block.Finish()
            writeStored (ReadOnlySpan body) |> ignore
            prevBlockLastKey <- Some block.LastKey
            block.Reset()
            bPuts <- 0
            bDeletes <- 0
            bMerges <- 0

    /// Adds the next row (file order is the caller's responsibility).
    member _.Add(row: RowEntry) : unit =
        if finished then
            invalidOp "SST builder already finished"

        if not (block.TryAdd row) then
            flushBlock ()

            if not (block.TryAdd row) then
                invalidOp "an empty block must accept any row"

        if block.Count = 1 then
            blockFirstKey <- row.Key
            blockFirstSeq <- row.Seq

        if rows = 0 then
            firstKey <- Some row.Key
            firstSeq <- row.Seq

        lastKey <- row.Key
        rows <- rows + 1
        minSeq <- min minSeq row.Seq
        maxSeq <- max maxSeq row.Seq

        match row.CreateTs with
        | Some c ->
            maxCreate <-
                Some(
                    match maxCreate with
                    | Some m -> max m c
                    | None -> c
                )
        | None -> ()

        rawKey <- rawKey + uint64 row.Key.Length

        match row.Value with
        | RowValue.Value v ->
            puts <- puts + 1UL
            bPuts <- bPuts + 1
            rawVal <- rawVal + uint64 v.Length
        | RowValue.Merge v ->
            merges <- merges + 1UL
            bMerges <- bMerges + 1
            rawVal <- rawVal + uint64 v.Length
        | RowValue.Tombstone ->
            deletes <- deletes + 1UL
            bDeletes <- bDeletes + 1

        if sstType = SstType.Compacted then
            hashes.Add(Bloom.sipHash13 (ReadOnlySpan row.Key))

    /// Rows added so far.
    member _.RowCount: int = rows

    /// Bytes of completed data blocks so far (what the compactor's size split looks at).
    member _.CompletedBlockBytes: int64 = int64 out.WrittenCount

    /// Estimated size of the file if finished now.
    member _.EstimatedSize: int64 =
        int64 out.WrittenCount
        + int64 block.EstimatedSize
        + int64 (index.Count * 24)
        + 128L

    /// Writes filter, index, stats, info and footer; returns the file.
    member _.Finish() : BuiltSst =
        if finished then
            invalidOp "SST builder already finished"

        finished <- true
        flushBlock ()
        let dataEnd = uint64 out.WrittenCount

        let filterLen =
            if
                sstType = SstType.Compacted
                && options.BloomBitsPerKey > 0
                && rows > 0
                && rows >= options.MinFilterKeys
            then
                let data = Bloom.build options.BloomBitsPerKey (ReadOnlySpan(hashes.ToArray()))
                uint64 (writeStored (ReadOnlySpan data))
            else
                0UL

        let indexOffset = uint64 out.WrittenCount

        let indexLen =
            uint64 (writeStored (ReadOnlySpan(SstInfoCodec.encodeIndex (index.ToArray()))))

        let statsOffset, statsLen =
            match sstType with
            | SstType.Wal -> 0UL, 0UL
            | _ ->
                let stats =
                    { NumPuts = puts
                      NumDeletes = deletes
                      NumMerges = merges
                      RawKeySize = rawKey
                      RawValSize = rawVal
                      BlockStats = List.ofSeq blockStats }

                let off = uint64 out.WrittenCount
                off, uint64 (writeStored (ReadOnlySpan(SstInfoCodec.encodeStats stats)))

        let info =
            { FirstEntry =
                (match sstType with
                 | SstType.Wal ->
                     if rows > 0 then
                         Some(BigEndian.bytesOfU64 firstSeq)
                     else
                         None
                 | _ -> firstKey)
              LastEntry =
                (match sstType with
                 | SstType.Wal -> None
                 | _ -> if rows > 0 then Some lastKey else None)
              IndexOffset = indexOffset
              IndexLen = indexLen
              FilterOffset = dataEnd
              FilterLen = filterLen
              Compression = options.Compression
              SstType = sstType
              StatsOffset = statsOffset
              StatsLen = statsLen
              FilterFormat = FilterFormat.Legacy }

        let metaOff = uint64 out.WrittenCount
        let infoBytes = SstInfoCodec.encodeInfo info
        out.Write(ReadOnlySpan infoBytes)
        let tail = out.GetSpan 14
        BigEndian.writeU32 tail (Crc32.ofArray infoBytes)
        BigEndian.writeU64 (tail.Slice 4) metaOff
        BigEndian.writeU16 (tail.Slice 12) 2us
        out.Advance 14

        { Bytes = out.WrittenSpan.ToArray()
          Info = info
          RowCount = rows
          BlockCount = index.Count
          MinSeq = (if rows = 0 then 0UL else minSeq)
          MaxSeq = maxSeq
          MaxCreateTs = maxCreate }

/// A decoded SST's metadata: what a reader needs before fetching blocks.
type SstMeta =
    {
        /// The info block.
        Info: SsTableInfo
        /// Footer format version (1 or 2).
        FormatVersion: uint16
        /// Index entries, one per data block.
        Index: BlockMeta[]
    }

/// Parsers over byte ranges of an SST, and whole-file conveniences.
[<RequireQualifiedAccess>]
module Sst =
    /// Footer length.
    [<Literal>]
    let FooterLen = 10

    /// Builds an SST from rows in file order.
    let build (options: SstOptions) (sstType: SstType) (rows: RowEntry seq) : BuiltSst =
        let b = SstBuilder(options, sstType)

        for r in rows do
            b.Add r

        b.Finish()

    /// The WAL fence / empty SST: what the compacted builder makes from zero rows.
    let empty (options: SstOptions) : BuiltSst =
        build options SstType.Compacted Seq.empty

    /// Verifies the CRC of a stored block and decompresses it.
    let unframe (codec: CompressionCodec) (what: string) (stored: ReadOnlySpan<byte>) : Result<byte[], DecodeError> =
        if stored.Length < 4 then
            Error(DecodeError.Truncated(what, stored.Length))
        else
            let frame = stored.Slice(0, stored.Length - 4)
            let expected = BigEndian.u32 stored (stored.Length - 4)
            let actual = Crc32.compute frame

            if expected <> actual then
                Error(DecodeError.ChecksumMismatch(what, expected, actual))
            else
                Compression.decompress codec frame |> Result.mapError (DecodeError.within what)

    /// Parses the 10-byte footer: (meta offset, format version), checked against the file length.
    let parseFooter (fileLength: int64) (footer: ReadOnlySpan<byte>) : Result<struct (uint64 * uint16), DecodeError> =
        if fileLength <= int64 FooterLen || footer.Length <> FooterLen then
            Error(DecodeError.Invalid("footer", "empty SST"))
        else
            let metaOff = BigEndian.u64 footer 0
            let version = BigEndian.u16 footer 8

            if version <> 1us && version <> 2us then
                Error(DecodeError.UnsupportedVersion("footer", int version))
            elif metaOff + 4UL > uint64 (fileLength - int64 FooterLen) then
                Error(DecodeError.Invalid("footer", sprintf "info offset %d outside the file" metaOff))
            else
                Ok(struct (metaOff, version))

    /// Decodes the info block (`SsTableInfo` FlatBuffer followed by its CRC; never compressed)
    /// and checks that the block offsets it names lie inside `[0, metaOff)`.
    let decodeInfo (metaOff: uint64) (stored: ReadOnlySpan<byte>) : Result<SsTableInfo, DecodeError> =
        if stored.Length < 4 then
            Error(DecodeError.Truncated("info block", stored.Length))
        else
            let body = stored.Slice(0, stored.Length - 4)
            let expected = BigEndian.u32 stored (stored.Length - 4)
            let actual = Crc32.compute body

            if expected <> actual then
                Error(DecodeError.ChecksumMismatch("info block", expected, actual))
            else
                match SstInfoCodec.decodeInfo (body.ToArray()) with
                | Error e -> Error(DecodeError.within "info block" e)
                | Ok info ->
                    let within (o: uint64) (l: uint64) = o <= metaOff && l <= metaOff - o

                    if not (within info.IndexOffset info.IndexLen) || info.IndexLen < 4UL then
                        Error(DecodeError.Invalid("info block", "index block outside the file"))
                    elif not (within info.FilterOffset info.FilterLen) then
                        Error(DecodeError.Invalid("info block", "filter block outside the file"))
                    elif info.StatsLen > 0UL && not (within info.StatsOffset info.StatsLen) then
                        Error(DecodeError.Invalid("info block", "stats block outside the file"))
                    else
                        Ok info

    /// Decodes the stored index block and checks the block offsets.
    let decodeIndex (info: SsTableInfo) (stored: ReadOnlySpan<byte>) : Result<BlockMeta[], DecodeError> =
        let offsetsOk (index: BlockMeta[]) =
            index
            |> Array.mapi (fun i m ->
                let next =
                    if i + 1 < index.Length then
                        index[i + 1].Offset
                    else
                        info.FilterOffset

                m.Offset < next && next <= info.FilterOffset)
            |> Array.forall id

        unframe info.Compression "index block" stored
        |> Result.bind (fun body ->
            SstInfoCodec.decodeIndex body
            |> Result.mapError (DecodeError.within "index block"))
        |> Result.bind (fun index ->
            if offsetsOk index then
                Ok index
            else
                Error(DecodeError.Invalid("index block", "data block offsets are not increasing inside the data area")))

    /// Byte range `[start, end)` of data block `i`.
    let blockRange (meta: SstMeta) (i: int) : struct (uint64 * uint64) =
        let start = meta.Index[i].Offset

        let stop =
            if i + 1 < meta.Index.Length then
                meta.Index[i + 1].Offset
            else
                meta.Info.FilterOffset

        struct (start, stop)

    /// Decodes stored data block `i` into rows.
    let decodeBlock (meta: SstMeta) (i: int) (stored: ReadOnlySpan<byte>) : Result<RowEntry[], DecodeError> =
        let what = sprintf "block %d" i

        unframe meta.Info.Compression what stored
        |> Result.bind (fun body ->
            Block.decode meta.FormatVersion (ReadOnlySpan body)
            |> Result.mapError (DecodeError.within what))

    /// Decodes the stored filter block into bloom data (None when the SST has no usable filter).
    let decodeFilter (info: SsTableInfo) (stored: ReadOnlySpan<byte>) : Result<byte[] option, DecodeError> =
        if info.FilterLen = 0UL then
            Ok None
        else
            unframe info.Compression "filter block" stored
            |> Result.bind (fun body ->
                Bloom.tryDecodeFilterBlock info.FilterFormat body
                |> Result.mapError (DecodeError.within "filter block"))

    /// Decodes the stored stats block.
    let decodeStats (info: SsTableInfo) (stored: ReadOnlySpan<byte>) : Result<SstStats option, DecodeError> =
        if info.StatsLen = 0UL then
            Ok None
        else
            unframe info.Compression "stats block" stored
            |> Result.bind (fun body ->
                SstInfoCodec.decodeStats body
                |> Result.mapError (DecodeError.within "stats block"))
            |> Result.map Some

    /// Candidate block for key K per SPEC §4.6 (compacted SSTs): None when no block can hold it.
    let candidateBlock (index: BlockMeta[]) (key: ReadOnlySpan<byte>) : int voption =
        // pp = number of leading entries with first_key < key (first keys are non-decreasing)
        let mutable lo = 0
        let mutable hi = index.Length

        while lo < hi do
            let mid = (lo + hi) >>> 1

            if Bytes.compareSpan (ReadOnlySpan index[mid].FirstKey) key < 0 then
                lo <- mid + 1
            else
                hi <- mid

        if lo > 0 then
            ValueSome(lo - 1)
        elif index.Length > 0 && Bytes.compareSpan (ReadOnlySpan index[0].FirstKey) key = 0 then
            ValueSome 0
        else
            ValueNone

    let private slice (bytes: byte[]) (o: uint64) (l: uint64) = ReadOnlySpan(bytes, int o, int l)

    /// Decodes footer, info and index of a whole file in memory.
    let openBytes (bytes: byte[]) : Result<SstMeta, DecodeError> =
        result {
            let len = int64 bytes.Length

            let! struct (metaOff, version) =
                if len <= int64 FooterLen then
                    Error(DecodeError.Invalid("footer", "empty SST"))
                else
                    parseFooter len (ReadOnlySpan(bytes, bytes.Length - FooterLen, FooterLen))

            let! info = decodeInfo metaOff (slice bytes metaOff (uint64 (len - int64 FooterLen) - metaOff))
            let! index = decodeIndex info (slice bytes info.IndexOffset info.IndexLen)

            return
                { Info = info
                  FormatVersion = version
                  Index = index }
        }

    /// All rows of an in-memory file, in file order.
    let readAll (bytes: byte[]) : Result<RowEntry list, DecodeError> =
        let blocks (meta: SstMeta) =
            let acc = ResizeArray<RowEntry>()
            let mutable err = None

            for i in 0 .. meta.Index.Length - 1 do
                if err.IsNone then
                    let struct (s, e) = blockRange meta i

                    match decodeBlock meta i (slice bytes s (e - s)) with
                    | Ok rows -> acc.AddRange rows
                    | Error x -> err <- Some x

            match err with
            | Some x -> Error x
            | None -> Ok(List.ofSeq acc)

        openBytes bytes |> Result.bind blocks

    /// The filter and stats of an in-memory file are decodable (checks every CRC of the file).
    let verifyAll (bytes: byte[]) : Result<SstMeta, DecodeError> =
        result {
            let! meta = openBytes bytes
            let! _ = readAll bytes
            let! _ = decodeFilter meta.Info (slice bytes meta.Info.FilterOffset meta.Info.FilterLen)
            let! _ = decodeStats meta.Info (slice bytes meta.Info.StatsOffset meta.Info.StatsLen)
            return meta
        }
