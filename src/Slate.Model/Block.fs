/// Data blocks (SPEC §4.3). Storage format.
///
/// v2 (SST format 2): `rows … | restart[0]:u16be | … | restart[n-1]:u16be | n:u16be`; row i is a
/// restart point iff i mod 16 = 0 and then has shared = 0; other rows share a prefix with the
/// previous row's key. v1 (SST format 1, read-only): same trailer shape, but the offsets list every
/// row, n is the row count and rows use codec v0 (prefix from the block's first key).
namespace Slate.Model

open System

/// Accumulates rows into one v2 data block using SlateDB's fill rule (SPEC §4.3). A mutable
/// builder with pure semantics: the output depends only on the rows added since the last
/// `Reset`. Keeps references to the added rows' key arrays (never mutate them).
[<Sealed>]
type BlockBuilder(blockSize: int) =
    do
        if blockSize <= 0 then
            invalidArg "blockSize" (sprintf "block size must be positive, got %d" blockSize)

    let mutable buf: byte[] = Array.zeroCreate (max 256 (min blockSize 65536))
    let mutable len = 0
    let restarts = ResizeArray<int>()
    let mutable count = 0
    let mutable firstKey: byte[] = Bytes.empty
    let mutable lastKey: byte[] = Bytes.empty

    /// Restart interval of v2 blocks.
    static member RestartInterval: int = 16

    /// The configured target block size in bytes.
    member _.BlockSize: int = blockSize

    /// Number of rows added.
    member _.Count: int = count

    /// True when no row has been added.
    member _.IsEmpty: bool = count = 0

    /// Key of the first row added (empty when the block is empty).
    member _.FirstKey: byte[] = firstKey

    /// Key of the last row added (empty when the block is empty).
    member _.LastKey: byte[] = lastKey

    /// Size the block would have if finished now: rows_len + 2·restarts + 2.
    member _.EstimatedSize: int = len + 2 * restarts.Count + 2

    /// Adds the row if it fits (SPEC §4.3 fill rule; an empty block accepts any row); returns
    /// whether it was added. Throws `ArgumentException` for an empty key.
    member _.TryAdd(row: RowEntry) : bool =
        if row.Key.Length = 0 then
            invalidArg "row" "row key must not be empty"

        let isRestart = count % BlockBuilder.RestartInterval = 0

        let shared =
            if isRestart then
                0
            else
                Bytes.commonPrefix (ReadOnlySpan<byte> lastKey) (ReadOnlySpan<byte> row.Key)

        let size = Row.encodedSizeV2Shared shared row

        let fits =
            if count = 0 then
                true
            elif isRestart && len > 65535 then
                false
            else
                let current = int64 len + 2L * int64 restarts.Count + 2L
                let extra = if isRestart then 2L else 0L
                current + int64 size + extra <= int64 blockSize

        if fits then
            if len + size > buf.Length then
                let grown = Array.zeroCreate (max (len + size) (buf.Length * 2))
                Buffer.BlockCopy(buf, 0, grown, 0, len)
                buf <- grown

            if isRestart then
                restarts.Add len

            let n = Row.writeV2Shared (Span<byte>(buf, len, size)) shared row
            len <- len + n

            if count = 0 then
                firstKey <- row.Key

            lastKey <- row.Key
            count <- count + 1

        fits

    /// The encoded block: rows ‖ restart offsets (u16be) ‖ n (u16be). Does not reset the builder.
    /// Throws `InvalidOperationException` when empty (SlateDB never writes empty blocks).
    member _.Finish() : byte[] =
        if count = 0 then
            invalidOp "cannot finish an empty block"

        let n = restarts.Count
        let out = Array.zeroCreate (len + 2 * n + 2)
        Buffer.BlockCopy(buf, 0, out, 0, len)
        let span = Span<byte>(out)

        for j in 0 .. n - 1 do
            BigEndian.writeU16 (span.Slice(len + 2 * j)) (uint16 restarts[j])

        BigEndian.writeU16 (span.Slice(len + 2 * n)) (uint16 n)
        out

    /// Empties the builder for reuse (keeps its buffer).
    member _.Reset() : unit =
        len <- 0
        restarts.Clear()
        count <- 0
        firstKey <- Bytes.empty
        lastKey <- Bytes.empty

/// Shared decoding steps of `Block.decode` and `BlockCursor`.
module internal BlockFormat =
    let inline invalid (what: string) (detail: string) : Result<'a, DecodeError> =
        Error(DecodeError.Invalid(what, detail))

    /// Parses the trailer: returns the end of the row area and the offsets (restart offsets for
    /// v2, row offsets for v1), validated to be in range and strictly increasing from 0.
    let parseTrailer (format: uint16) (body: ReadOnlySpan<byte>) : Result<struct (int * int[]), DecodeError> =
        if format <> 1us && format <> 2us then
            Error(DecodeError.UnsupportedVersion("block format", int format))
        elif body.Length < 2 then
            Error(DecodeError.Truncated("block trailer", body.Length))
        else
            let n = int (BigEndian.u16 body (body.Length - 2))
            let rowsEnd = body.Length - 2 - 2 * n

            if n = 0 then
                invalid "block trailer" "block has no rows (n = 0)"
            elif rowsEnd < 0 then
                Error(DecodeError.Truncated(sprintf "block trailer with %d offsets" n, body.Length))
            else
                let offsets = Array.zeroCreate<int> n
                let mutable err = ValueNone
                let mutable j = 0

                while err.IsNone && j < n do
                    let o = int (BigEndian.u16 body (rowsEnd + 2 * j))

                    if j = 0 && o <> 0 then
                        err <- ValueSome(sprintf "first offset is %d, not 0" o)
                    elif j > 0 && o <= offsets[j - 1] then
                        err <- ValueSome(sprintf "offset %d (%d) not after offset %d (%d)" j o (j - 1) offsets[j - 1])
                    elif o >= rowsEnd then
                        err <- ValueSome(sprintf "offset %d (%d) outside the row area of %d bytes" j o rowsEnd)
                    else
                        offsets[j] <- o

                    j <- j + 1

                match err with
                | ValueSome d -> invalid "block trailer" d
                | ValueNone -> Ok(struct (rowsEnd, offsets))

    /// Checks that the row about to be decoded at `pos` (row `index`) is where the trailer says.
    let checkPosition (format: uint16) (offsets: int[]) (index: int) (pos: int) : Result<unit, DecodeError> =
        if format = 2us then
            if index % BlockBuilder.RestartInterval = 0 then
                let j = index / BlockBuilder.RestartInterval

                if j >= offsets.Length then
                    invalid
                        "block"
                        (sprintf "row %d at byte %d needs restart %d, block has %d" index pos j offsets.Length)
                elif offsets[j] <> pos then
                    invalid
                        "block"
                        (sprintf "restart %d is at byte %d, row %d starts at byte %d" j offsets[j] index pos)
                else
                    Ok()
            else
                Ok()
        elif index >= offsets.Length then
            invalid "block" (sprintf "row %d at byte %d beyond the %d listed rows" index pos offsets.Length)
        elif offsets[index] <> pos then
            invalid "block" (sprintf "row %d is listed at byte %d but starts at byte %d" index offsets[index] pos)
        else
            Ok()

    /// Checks, when the row area is exhausted after `count` rows, that the trailer agrees.
    let checkComplete (format: uint16) (offsets: int[]) (count: int) : Result<unit, DecodeError> =
        let expected =
            if format = 2us then
                (count + BlockBuilder.RestartInterval - 1) / BlockBuilder.RestartInterval
            else
                count

        if expected <> offsets.Length then
            invalid "block" (sprintf "%d rows fill the row area but the trailer lists %d offsets" count offsets.Length)
        else
            Ok()

    /// Decodes row `index` at `pos` (after `checkPosition`). `prevKey` is the previous row's key
    /// for v2 and the block's first key for v1 (empty for row 0).
    let decodeRow
        (format: uint16)
        (rows: ReadOnlySpan<byte>)
        (index: int)
        (pos: int)
        (prevKey: ReadOnlySpan<byte>)
        : Result<struct (RowEntry * int), DecodeError> =
        if format = 2us then
            if index % BlockBuilder.RestartInterval = 0 then
                match Varint.tryRead rows pos with
                | ValueSome(struct (shared, _)) when shared <> 0u ->
                    invalid (sprintf "row at byte %d" pos) (sprintf "restart row %d has shared prefix %d" index shared)
                | _ -> Row.tryDecodeV2 rows pos ReadOnlySpan<byte>.Empty
            else
                Row.tryDecodeV2 rows pos prevKey
        elif index = 0 then
            Row.tryDecodeV0 rows pos ReadOnlySpan<byte>.Empty
        else
            Row.tryDecodeV0 rows pos prevKey

/// A forward cursor over one block that seeks without decoding the whole block (binary search
/// on restart keys for v2, on row keys for v1, then a key-only linear scan). Mutable, with pure
/// semantics; not thread-safe. Create it with `Block.openCursor`. Validation is incremental:
/// structural damage is reported by the `MoveNext` or `Seek` call that reaches it.
[<Sealed>]
type BlockCursor internal (format: uint16, body: ReadOnlyMemory<byte>, rowsEnd: int, offsets: int[], firstKey: byte[]) =
    let mutable pos = 0
    let mutable index = 0
    let mutable keyBuf: byte[] = Array.zeroCreate 64
    let mutable keyLen = 0
    let mutable current: RowEntry = Unchecked.defaultof<RowEntry>
    let mutable hasCurrent = false

    let setKey (k: byte[]) =
        if k.Length > keyBuf.Length then
            keyBuf <- Array.zeroCreate (max k.Length (keyBuf.Length * 2))

        Buffer.BlockCopy(k, 0, keyBuf, 0, k.Length)
        keyLen <- k.Length

    /// The SST format version of the block (1 or 2).
    member _.FormatVersion: uint16 = format

    /// The row produced by the last successful `MoveNext` returning true.
    member _.Current: RowEntry =
        if not hasCurrent then
            invalidOp "no current row"

        current

    /// Positions the cursor before the first row.
    member _.SeekToFirst() : unit =
        pos <- 0
        index <- 0
        keyLen <- 0
        hasCurrent <- false

    /// Decodes the next row into `Current`; `Ok false` at the end of the block (after checking
    /// that the rows exactly fill the row area as the trailer says).
    member _.MoveNext() : Result<bool, DecodeError> =
        hasCurrent <- false
        let rows = body.Span.Slice(0, rowsEnd)

        if pos >= rowsEnd then
            BlockFormat.checkComplete format offsets index |> Result.map (fun () -> false)
        else
            match BlockFormat.checkPosition format offsets index pos with
            | Error e -> Error e
            | Ok() ->
                let prev =
                    if format = 2us then
                        ReadOnlySpan<byte>(keyBuf, 0, keyLen)
                    else
                        ReadOnlySpan<byte>(firstKey)

                match BlockFormat.decodeRow format rows index pos prev with
                | Error e -> Error e
                | Ok(struct (row, next)) ->
                    current <- row
                    hasCurrent <- true

                    if format = 2us then
                        setKey row.Key

                    pos <- next
                    index <- index + 1
                    Ok true

    /// Positions the cursor so that the next `MoveNext` yields the first row whose key is ≥
    /// `target` (or ends the block). Requires keys in ascending order (compacted SSTs); for
    /// unsorted WAL blocks iterate from `SeekToFirst` instead.
    member this.Seek(target: ReadOnlySpan<byte>) : Result<unit, DecodeError> =
        hasCurrent <- false
        let rows = body.Span.Slice(0, rowsEnd)

        if format = 2us then
            this.SeekV2(rows, target)
        else
            this.SeekV1(rows, target)

    member private _.SeekV2(rows: ReadOnlySpan<byte>, target: ReadOnlySpan<byte>) : Result<unit, DecodeError> =
        // Largest restart whose key is < target: the first row >= target is at or after it.
        let mutable lo = 0
        let mutable hi = offsets.Length - 1
        let mutable err = ValueNone

        while err.IsNone && lo < hi do
            let mid = (lo + hi + 1) / 2

            match Row.tryReadHeaderV2 rows offsets[mid] with
            | Error e -> err <- ValueSome e
            | Ok h when h.Shared <> 0 ->
                err <-
                    ValueSome(
                        DecodeError.Invalid(
                            sprintf "row at byte %d" offsets[mid],
                            sprintf "restart %d has shared prefix %d" mid h.Shared
                        )
                    )
            | Ok h ->
                if rows.Slice(h.SuffixOffset, h.Unshared).SequenceCompareTo(target) < 0 then
                    lo <- mid
                else
                    hi <- mid - 1

        match err with
        | ValueSome e -> Error e
        | ValueNone ->
            pos <- offsets[lo]
            index <- lo * BlockBuilder.RestartInterval
            keyLen <- 0
            let mutable fin = false

            while err.IsNone && not fin do
                if pos >= rowsEnd then
                    fin <- true
                else
                    match BlockFormat.checkPosition format offsets index pos with
                    | Error e -> err <- ValueSome e
                    | Ok() ->
                        match Row.tryReadHeaderV2 rows pos with
                        | Error e -> err <- ValueSome e
                        | Ok h ->
                            let restart = index % BlockBuilder.RestartInterval = 0

                            if (restart && h.Shared <> 0) || h.Shared > keyLen then
                                err <-
                                    ValueSome(
                                        DecodeError.Invalid(
                                            sprintf "row at byte %d" pos,
                                            sprintf "shared prefix %d invalid (previous key %d bytes)" h.Shared keyLen
                                        )
                                    )
                            else
                                let klen = h.Shared + h.Unshared

                                if klen > keyBuf.Length then
                                    let grown = Array.zeroCreate (max klen (keyBuf.Length * 2))
                                    Buffer.BlockCopy(keyBuf, 0, grown, 0, h.Shared)
                                    keyBuf <- grown

                                rows.Slice(h.SuffixOffset, h.Unshared).CopyTo(Span<byte>(keyBuf, h.Shared, h.Unshared))
                                keyLen <- klen

                                if ReadOnlySpan<byte>(keyBuf, 0, klen).SequenceCompareTo(target) >= 0 then
                                    fin <- true
                                else
                                    let p = h.SuffixOffset + h.Unshared + h.ValueLen
                                    let flags = rows[p + 8]

                                    match Row.checkFlags flags pos with
                                    | Error e -> err <- ValueSome e
                                    | Ok() ->
                                        let ts =
                                            (if flags &&& Row.FlagHasExpireTs <> 0uy then 8 else 0)
                                            + (if flags &&& Row.FlagHasCreateTs <> 0uy then 8 else 0)

                                        let next = p + 9 + ts

                                        if next > rowsEnd then
                                            err <-
                                                ValueSome(DecodeError.Truncated(sprintf "row at byte %d" pos, rowsEnd))
                                        else
                                            pos <- next
                                            index <- index + 1

            match err with
            | ValueSome e -> Error e
            | ValueNone -> Ok()

    member private _.SeekV1(rows: ReadOnlySpan<byte>, target: ReadOnlySpan<byte>) : Result<unit, DecodeError> =
        // Lower bound over all rows: key(i) = firstKey[0..prefix] ‖ suffix.
        let mutable lo = 0
        let mutable hi = offsets.Length
        let mutable err = ValueNone

        while err.IsNone && lo < hi do
            let mid = (lo + hi) / 2
            let o = offsets[mid]

            if o + 4 > rows.Length then
                err <- ValueSome(DecodeError.Truncated(sprintf "v0 row %d key lengths" mid, o))
            else
                let prefix = int (BigEndian.u16 rows o)
                let suffix = int (BigEndian.u16 rows (o + 2))

                if prefix > firstKey.Length || (mid = 0 && prefix <> 0) then
                    err <- ValueSome(DecodeError.Invalid(sprintf "row at byte %d" o, sprintf "key prefix %d" prefix))
                elif o + 4 + suffix > rows.Length then
                    err <- ValueSome(DecodeError.Truncated(sprintf "v0 row %d key" mid, o))
                else
                    let p = ReadOnlySpan<byte>(firstKey, 0, prefix)
                    let s = rows.Slice(o + 4, suffix)
                    let n = min prefix target.Length
                    let c1 = p.SequenceCompareTo(target.Slice(0, n))

                    let c =
                        if c1 <> 0 || n < prefix then
                            c1
                        else
                            s.SequenceCompareTo(target.Slice n)

                    if c < 0 then lo <- mid + 1 else hi <- mid

        match err with
        | ValueSome e -> Error e
        | ValueNone ->
            index <- lo
            pos <- (if lo < offsets.Length then offsets[lo] else rowsEnd)
            Ok()

/// Decoding of data blocks.
[<RequireQualifiedAccess>]
module Block =
    /// Restart interval of v2 blocks.
    [<Literal>]
    let RestartInterval = 16

    /// Decodes every row of a block of SST format `formatVersion` (2: v2 block and rows, 1: v1
    /// block with v0 rows). Validates the trailer (n ≥ 1, offsets from 0, increasing, inside the
    /// row area), the restart positions and shared = 0 of restart rows (v2), the listed row
    /// offsets (v1), and that the rows exactly fill the row area.
    let decode (formatVersion: uint16) (body: ReadOnlySpan<byte>) : Result<RowEntry[], DecodeError> =
        match BlockFormat.parseTrailer formatVersion body with
        | Error e -> Error e
        | Ok(struct (rowsEnd, offsets)) ->
            let rows = body.Slice(0, rowsEnd)

            let out =
                ResizeArray<RowEntry>(
                    if formatVersion = 2us then
                        offsets.Length * RestartInterval
                    else
                        offsets.Length
                )

            let mutable pos = 0
            let mutable prev = Bytes.empty
            let mutable err = ValueNone

            while err.IsNone && pos < rowsEnd do
                let index = out.Count

                match BlockFormat.checkPosition formatVersion offsets index pos with
                | Error e -> err <- ValueSome e
                | Ok() ->
                    match BlockFormat.decodeRow formatVersion rows index pos (ReadOnlySpan<byte> prev) with
                    | Error e -> err <- ValueSome e
                    | Ok(struct (row, next)) ->
                        out.Add row
                        pos <- next

                        if formatVersion = 2us || index = 0 then
                            prev <- row.Key

            match err with
            | ValueSome e -> Error e
            | ValueNone ->
                match BlockFormat.checkComplete formatVersion offsets out.Count with
                | Error e -> Error e
                | Ok() -> Ok(out.ToArray())

    /// Opens a cursor over a block body (trailer validated now, rows lazily). For format 1 the
    /// first row's key is read eagerly (it is the prefix source of every row).
    let openCursor (formatVersion: uint16) (body: ReadOnlyMemory<byte>) : Result<BlockCursor, DecodeError> =
        match BlockFormat.parseTrailer formatVersion body.Span with
        | Error e -> Error e
        | Ok(struct (rowsEnd, offsets)) ->
            if formatVersion = 2us then
                Ok(BlockCursor(formatVersion, body, rowsEnd, offsets, Bytes.empty))
            else
                let rows = body.Span.Slice(0, rowsEnd)

                if rows.Length < 4 then
                    Error(DecodeError.Truncated("v0 row 0 key lengths", 0))
                else
                    let prefix = int (BigEndian.u16 rows 0)
                    let suffix = int (BigEndian.u16 rows 2)

                    if prefix <> 0 then
                        Error(DecodeError.Invalid("row at byte 0", sprintf "first row has key prefix %d" prefix))
                    elif 4 + suffix > rows.Length then
                        Error(DecodeError.Truncated("v0 row 0 key", 4))
                    else
                        Ok(BlockCursor(formatVersion, body, rowsEnd, offsets, rows.Slice(4, suffix).ToArray()))

    /// Index of the first row whose key is ≥ `key` in rows sorted by key (`rows.Length` when none):
    /// a seek over an already decoded block.
    let lowerBound (rows: RowEntry[]) (key: ReadOnlySpan<byte>) : int =
        let mutable lo = 0
        let mutable hi = rows.Length

        while lo < hi do
            let mid = (lo + hi) / 2

            if ReadOnlySpan<byte>(rows[mid].Key).SequenceCompareTo(key) < 0 then
                lo <- mid + 1
            else
                hi <- mid

        lo
