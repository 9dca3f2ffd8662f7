/// A small, pure FlatBuffers implementation (SPEC §4.11): a verifying reader whose every access
/// returns a Result, and a builder that serialises a table description to a verifier-clean buffer.
/// No file identifier, no size prefix. All FlatBuffers scalars are little-endian.
///
/// Verification follows the standard (Rust `flatbuffers` crate) verifier: the root and every table
/// are 4-byte aligned; the vtable lies in the buffer, is 2-byte aligned and has an even length;
/// scalars are naturally aligned (u64 to 8, relative to the buffer start); uoffsets are followed
/// forwards only; vector bodies lie inside the buffer and start aligned to their element size;
/// strings are valid UTF-8 followed by a 0 byte. In addition this reader requires vtables of at
/// least 4 bytes and fields that lie inside the table's inline size, limits nesting to 64 tables
/// and bounds the total bytes visited (against shared-offset amplification).
namespace Slate.Model

open System
open System.Buffers.Binary

/// The bytes of one FlatBuffer being read, with the verifier's visit budget. Create with
/// `FlatBuf.root`. The budget counter is the only state; it never affects decoded values.
[<Sealed>]
type FbBuffer internal (data: ReadOnlyMemory<byte>) =
    let limit = max (1L <<< 20) (int64 data.Length * 64L)
    let mutable visited = 0L

    /// The buffer's bytes (offsets are relative to their start).
    member _.Data: ReadOnlyMemory<byte> = data

    /// Length in bytes.
    member _.Length: int = data.Length

    /// Adds `n` bytes to the visit budget; false once the budget is exhausted.
    member internal _.Charge(n: int) : bool =
        visited <- visited + int64 n
        visited <= limit

/// A verified table inside a FlatBuffer: its position, vtable and the name used in error messages.
[<Struct; NoEquality; NoComparison>]
type FbTable =
    {
        /// The buffer holding the table.
        Buffer: FbBuffer
        /// Position of the table (its soffset to the vtable).
        Pos: int
        /// Position of the vtable.
        VTable: int
        /// vtable length in bytes.
        VTableLen: int
        /// Inline size of the table in bytes (from the vtable).
        InlineSize: int
        /// Nesting depth (root = 1).
        Depth: int
        /// Table name for error messages (e.g. "ManifestV1.l0[3]").
        Name: string
    }

/// A union field read from a table (type slot + value slot).
[<RequireQualifiedAccess; NoEquality; NoComparison>]
type FbUnion =
    /// Neither slot present, or tag NONE (0).
    | NoValue
    /// A tag and its (verified) table value.
    | Value of tag: byte * table: FbTable

/// One field of a table to build (`FlatBuf.build`). A union is two fields: a `U8` tag in its
/// type slot and a `Table` in its value slot.
[<RequireQualifiedAccess>]
type FbField =
    /// A bool scalar.
    | Bool of slot: int * value: bool
    /// A ubyte / byte (enum) scalar.
    | U8 of slot: int * value: byte
    /// A ushort scalar.
    | U16 of slot: int * value: uint16
    /// A uint scalar.
    | U32 of slot: int * value: uint32
    /// An int scalar.
    | I32 of slot: int * value: int32
    /// A ulong scalar.
    | U64 of slot: int * value: uint64
    /// A long scalar.
    | I64 of slot: int * value: int64
    /// A `[ubyte]` vector.
    | Bytes of slot: int * value: byte[]
    /// A string (UTF-8, 0-terminated).
    | String of slot: int * value: string
    /// A `[ushort]` vector.
    | U16s of slot: int * value: uint16[]
    /// A `[uint]` vector.
    | U32s of slot: int * value: uint32[]
    /// A `[ulong]` vector.
    | U64s of slot: int * value: uint64[]
    /// A sub-table.
    | Table of slot: int * fields: FbField list
    /// A vector of tables.
    | Tables of slot: int * tables: FbField list list

/// Growable little-endian output used by `FlatBuf.build` (private mutable state).
type private FbWriter() =
    let mutable buf: byte[] = Array.zeroCreate 256
    let mutable len = 0

    member _.Length = len

    member _.Ensure(n: int) =
        if len + n > buf.Length then
            let next = Array.zeroCreate (max (buf.Length * 2) (len + n))
            Buffer.BlockCopy(buf, 0, next, 0, len)
            buf <- next

    /// Appends zero bytes until the length is a multiple of `a` plus `rem`.
    member this.PadTo(a: int, rem: int) =
        while len % a <> rem do
            this.Ensure 1
            buf[len] <- 0uy
            len <- len + 1

    /// Reserves `n` zero bytes and returns their position.
    member this.Reserve(n: int) : int =
        this.Ensure n
        Array.Clear(buf, len, n)
        let p = len
        len <- len + n
        p

    member this.Append(src: ReadOnlySpan<byte>) =
        this.Ensure src.Length
        src.CopyTo(Span<byte>(buf, len, src.Length))
        len <- len + src.Length

    member _.Span(pos: int, n: int) : Span<byte> = Span<byte>(buf, pos, n)
    member _.ToArray() : byte[] = Array.sub buf 0 len

/// Reading and building FlatBuffers.
[<RequireQualifiedAccess>]
module FlatBuf =
    /// Maximum table nesting depth accepted by the reader (as the standard verifier).
    let maxDepth: int = 64

    let private invalid (what: string) (detail: string) : Result<'a, DecodeError> =
        Error(DecodeError.Invalid(what, detail))

    let private fieldName (t: FbTable) (field: string) = t.Name + "." + field

    // The checks below return null when fine, else the failure detail (no allocation on success).

    /// `[pos, pos + size)` lies in the buffer; charges it to the visit budget.
    let private checkRange (b: FbBuffer) (pos: int64) (size: int64) : string =
        if pos < 0L || size < 0L || pos + size > int64 b.Length then
            sprintf "range [%d, %d) outside the %d-byte buffer" pos (pos + size) b.Length
        elif not (b.Charge(int (min size (int64 Int32.MaxValue)))) then
            "apparent size too large (shared offsets?)"
        else
            null

    /// `checkRange` plus natural alignment of `pos` to `size`.
    let private checkScalar (b: FbBuffer) (pos: int64) (size: int) : string =
        if pos >= 0L && pos % int64 size <> 0L then
            sprintf "%d-byte scalar at %d is unaligned" size pos
        else
            checkRange b pos (int64 size)

    let private readU16 (b: FbBuffer) (pos: int) =
        BinaryPrimitives.ReadUInt16LittleEndian(b.Data.Span.Slice pos)

    let private readU32 (b: FbBuffer) (pos: int) =
        BinaryPrimitives.ReadUInt32LittleEndian(b.Data.Span.Slice pos)

    let private readI32 (b: FbBuffer) (pos: int) =
        BinaryPrimitives.ReadInt32LittleEndian(b.Data.Span.Slice pos)

    /// Verifies the table at `pos` (soffset, vtable) and returns its handle.
    let private visitTable (b: FbBuffer) (name: string) (depth: int) (pos: int64) : Result<FbTable, DecodeError> =
        if depth > maxDepth then
            invalid name (sprintf "nesting deeper than %d tables" maxDepth)
        else
            match checkScalar b pos 4 with
            | null ->
                let p = int pos
                let vt = int64 p - int64 (readI32 b p)

                if vt < 0L || vt >= int64 b.Length then
                    invalid name (sprintf "vtable offset points outside the buffer (%d)" vt)
                else
                    match checkScalar b vt 2 with
                    | null ->
                        let vt = int vt
                        let vtLen = int (readU16 b vt)

                        if vtLen < 4 || vtLen % 2 <> 0 then
                            invalid name (sprintf "bad vtable length %d" vtLen)
                        else
                            match checkRange b (int64 vt) (int64 vtLen) with
                            | null ->
                                let inlineSize = int (readU16 b (vt + 2))

                                if inlineSize < 4 || int64 p + int64 inlineSize > int64 b.Length then
                                    invalid name (sprintf "bad table size %d at %d" inlineSize p)
                                else
                                    Ok
                                        { Buffer = b
                                          Pos = p
                                          VTable = vt
                                          VTableLen = vtLen
                                          InlineSize = inlineSize
                                          Depth = depth
                                          Name = name }
                            | d -> invalid name d
                    | d -> invalid name d
            | d -> invalid name d

    /// Opens the root table of a buffer (`name` labels errors, e.g. "SsTableInfo").
    let root (name: string) (data: ReadOnlyMemory<byte>) : Result<FbTable, DecodeError> =
        let b = FbBuffer(data)

        match checkScalar b 0L 4 with
        | null -> visitTable b name 1 (int64 (readU32 b 0))
        | d -> invalid (name + " root offset") d

    /// Position of the field in `slot` (-1 when absent) after checking that its `size` bytes lie
    /// inside the table, are aligned and inside the buffer; or the failure detail.
    let private fieldAt (t: FbTable) (slot: int) (size: int) (detail: byref<string>) : int =
        let voff = 4 + 2 * slot

        if slot < 0 then
            invalidArg "slot" "negative slot"
        elif voff + 2 > t.VTableLen then
            -1
        else
            let off = int (readU16 t.Buffer (t.VTable + voff))

            if off = 0 then
                -1
            elif off < 4 || off + size > t.InlineSize then
                detail <- sprintf "field offset %d outside the %d-byte table" off t.InlineSize
                -1
            else
                let p = t.Pos + off
                detail <- checkScalar t.Buffer (int64 p) size
                p

    /// True when the field in `slot` is present.
    let isPresent (t: FbTable) (slot: int) : bool =
        let voff = 4 + 2 * slot
        voff + 2 <= t.VTableLen && readU16 t.Buffer (t.VTable + voff) <> 0us

    let inline private scalarWith
        (size: int)
        ([<InlineIfLambda>] read: FbBuffer -> int -> 'T)
        (t: FbTable)
        (slot: int)
        (field: string)
        ([<InlineIfLambda>] wrap: 'T -> 'R)
        (absentR: Result<'R, DecodeError>)
        : Result<'R, DecodeError> =
        let mutable detail: string = null
        let p = fieldAt t slot size &detail

        if not (isNull detail) then
            invalid (fieldName t field) detail
        elif p < 0 then
            absentR
        else
            Ok(wrap (read t.Buffer p))

    /// A bool field (any non-zero byte is true).
    let bool (t: FbTable) (slot: int) (field: string) (dflt: bool) : Result<bool, DecodeError> =
        scalarWith 1 (fun b p -> b.Data.Span[p] <> 0uy) t slot field id (Ok dflt)

    /// A ubyte / byte-enum field.
    let u8 (t: FbTable) (slot: int) (field: string) (dflt: byte) : Result<byte, DecodeError> =
        scalarWith 1 (fun b p -> b.Data.Span[p]) t slot field id (Ok dflt)

    /// A ushort field.
    let u16 (t: FbTable) (slot: int) (field: string) (dflt: uint16) : Result<uint16, DecodeError> =
        scalarWith 2 (fun b p -> BinaryPrimitives.ReadUInt16LittleEndian(b.Data.Span.Slice p)) t slot field id (Ok dflt)

    /// A uint field.
    let u32 (t: FbTable) (slot: int) (field: string) (dflt: uint32) : Result<uint32, DecodeError> =
        scalarWith 4 (fun b p -> BinaryPrimitives.ReadUInt32LittleEndian(b.Data.Span.Slice p)) t slot field id (Ok dflt)

    /// An int field.
    let i32 (t: FbTable) (slot: int) (field: string) (dflt: int32) : Result<int32, DecodeError> =
        scalarWith 4 (fun b p -> BinaryPrimitives.ReadInt32LittleEndian(b.Data.Span.Slice p)) t slot field id (Ok dflt)

    /// A ulong field.
    let u64 (t: FbTable) (slot: int) (field: string) (dflt: uint64) : Result<uint64, DecodeError> =
        scalarWith 8 (fun b p -> BinaryPrimitives.ReadUInt64LittleEndian(b.Data.Span.Slice p)) t slot field id (Ok dflt)

    /// A long field.
    let i64 (t: FbTable) (slot: int) (field: string) (dflt: int64) : Result<int64, DecodeError> =
        scalarWith 8 (fun b p -> BinaryPrimitives.ReadInt64LittleEndian(b.Data.Span.Slice p)) t slot field id (Ok dflt)

    /// An optional (no default) ubyte field.
    let u8Opt (t: FbTable) (slot: int) (field: string) : Result<byte option, DecodeError> =
        scalarWith 1 (fun b p -> b.Data.Span[p]) t slot field Some (Ok None)

    /// An optional (no default) ushort field, e.g. `CompactedSsTable.format_version`.
    let u16Opt (t: FbTable) (slot: int) (field: string) : Result<uint16 option, DecodeError> =
        scalarWith
            2
            (fun b p -> BinaryPrimitives.ReadUInt16LittleEndian(b.Data.Span.Slice p))
            t
            slot
            field
            Some
            (Ok None)

    /// An optional (no default) uint field.
    let u32Opt (t: FbTable) (slot: int) (field: string) : Result<uint32 option, DecodeError> =
        scalarWith
            4
            (fun b p -> BinaryPrimitives.ReadUInt32LittleEndian(b.Data.Span.Slice p))
            t
            slot
            field
            Some
            (Ok None)

    /// An optional (no default) ulong field.
    let u64Opt (t: FbTable) (slot: int) (field: string) : Result<uint64 option, DecodeError> =
        scalarWith
            8
            (fun b p -> BinaryPrimitives.ReadUInt64LittleEndian(b.Data.Span.Slice p))
            t
            slot
            field
            Some
            (Ok None)

    /// Follows the uoffset field in `slot`: the target position, -1 when absent, or a detail.
    let private offsetTarget (t: FbTable) (slot: int) (detail: byref<string>) : int64 =
        let p = fieldAt t slot 4 &detail

        if isNull detail && p >= 0 then
            int64 p + int64 (readU32 t.Buffer p)
        else
            -1L

    /// Verifies a vector header at `vp` with elements of `elemSize` bytes; returns its start
    /// and sets `count`, or sets `detail`.
    let private vectorAt (b: FbBuffer) (vp: int64) (elemSize: int) (count: byref<int>) (detail: byref<string>) : int =
        detail <- checkScalar b vp 4

        if not (isNull detail) then
            -1
        else
            let n = int64 (readU32 b (int vp))
            let start = vp + 4L

            if start % int64 elemSize <> 0L then
                detail <- sprintf "vector body at %d unaligned for %d-byte elements" start elemSize
                -1
            else
                detail <- checkRange b start (n * int64 elemSize)
                count <- int n
                int start

    /// The vector in `slot`: (start, count), None when absent.
    let private vector
        (t: FbTable)
        (slot: int)
        (field: string)
        (elemSize: int)
        : Result<struct (int * int) voption, DecodeError> =
        let mutable detail: string = null
        let vp = offsetTarget t slot &detail

        if not (isNull detail) then
            invalid (fieldName t field) detail
        elif vp < 0L then
            Ok ValueNone
        else
            let mutable n = 0
            let start = vectorAt t.Buffer vp elemSize &n &detail

            if isNull detail then
                Ok(ValueSome(struct (start, n)))
            else
                invalid (fieldName t field) detail

    let private required (t: FbTable) (field: string) (r: Result<'a option, DecodeError>) : Result<'a, DecodeError> =
        match r with
        | Ok(Some v) -> Ok v
        | Ok None -> invalid (fieldName t field) "missing required field"
        | Error e -> Error e

    /// A sub-table (`childName` labels errors inside it).
    let table (t: FbTable) (slot: int) (field: string) (childName: string) : Result<FbTable option, DecodeError> =
        let mutable detail: string = null
        let p = offsetTarget t slot &detail

        if not (isNull detail) then
            invalid (fieldName t field) detail
        elif p < 0L then
            Ok None
        else
            match visitTable t.Buffer childName (t.Depth + 1) p with
            | Ok c -> Ok(Some c)
            | Error e -> Error e

    /// A required sub-table.
    let tableReq (t: FbTable) (slot: int) (field: string) (childName: string) : Result<FbTable, DecodeError> =
        table t slot field childName |> required t field

    /// A `[ubyte]` vector, copied out.
    let bytes (t: FbTable) (slot: int) (field: string) : Result<byte[] option, DecodeError> =
        match vector t slot field 1 with
        | Ok(ValueSome(struct (start, n))) -> Ok(Some(t.Buffer.Data.Slice(start, n).ToArray()))
        | Ok ValueNone -> Ok None
        | Error e -> Error e

    /// A required `[ubyte]` vector.
    let bytesReq (t: FbTable) (slot: int) (field: string) : Result<byte[], DecodeError> =
        bytes t slot field |> required t field

    /// Decodes `n` bytes at `start` as strict UTF-8 followed by a 0 byte.
    let private utf8At (b: FbBuffer) (what: string) (start: int) (n: int) : Result<string, DecodeError> =
        let s = b.Data.Span

        if start + n >= s.Length || s[start + n] <> 0uy then
            invalid what "string lacks its 0 terminator"
        elif not (Text.Unicode.Utf8.IsValid(s.Slice(start, n))) then
            invalid what "string is not valid UTF-8"
        else
            Ok(Text.Encoding.UTF8.GetString(s.Slice(start, n)))

    /// A string: valid UTF-8 followed by a 0 byte.
    let string (t: FbTable) (slot: int) (field: string) : Result<string option, DecodeError> =
        match vector t slot field 1 with
        | Ok(ValueSome(struct (start, n))) -> utf8At t.Buffer (fieldName t field) start n |> Result.map Some
        | Ok ValueNone -> Ok None
        | Error e -> Error e

    /// A required string.
    let stringReq (t: FbTable) (slot: int) (field: string) : Result<string, DecodeError> =
        string t slot field |> required t field

    let private scalarVector size (read: FbBuffer -> int -> 'T) (t: FbTable) (slot: int) (field: string) =
        match vector t slot field size with
        | Ok(ValueSome(struct (start, n))) -> Ok(Some(Array.init n (fun i -> read t.Buffer (start + i * size))))
        | Ok ValueNone -> Ok None
        | Error e -> Error e

    /// A `[ushort]` vector.
    let u16s (t: FbTable) (slot: int) (field: string) : Result<uint16[] option, DecodeError> =
        scalarVector 2 (fun b p -> BinaryPrimitives.ReadUInt16LittleEndian(b.Data.Span.Slice p)) t slot field

    /// A `[uint]` vector.
    let u32s (t: FbTable) (slot: int) (field: string) : Result<uint32[] option, DecodeError> =
        scalarVector 4 (fun b p -> BinaryPrimitives.ReadUInt32LittleEndian(b.Data.Span.Slice p)) t slot field

    /// A `[ulong]` vector.
    let u64s (t: FbTable) (slot: int) (field: string) : Result<uint64[] option, DecodeError> =
        scalarVector 8 (fun b p -> BinaryPrimitives.ReadUInt64LittleEndian(b.Data.Span.Slice p)) t slot field

    /// Visits the `n` table offsets starting at `start`, stopping at the first error.
    let private visitElements (t: FbTable) (childName: string) (start: int) (n: int) : Result<FbTable[], DecodeError> =
        let out = Array.zeroCreate n
        let mutable err = None
        let mutable i = 0

        while err.IsNone && i < n do
            let ep = start + 4 * i
            let target = int64 ep + int64 (readU32 t.Buffer ep)

            match visitTable t.Buffer (childName + "[" + i.ToString() + "]") (t.Depth + 1) target with
            | Ok c -> out[i] <- c
            | Error e -> err <- Some e

            i <- i + 1

        match err with
        | Some e -> Error e
        | None -> Ok out

    /// A vector of tables; element *i* is labelled `childName[i]` in errors.
    let tables (t: FbTable) (slot: int) (field: string) (childName: string) : Result<FbTable[] option, DecodeError> =
        match vector t slot field 4 with
        | Ok(ValueSome(struct (start, n))) -> visitElements t childName start n |> Result.map Some
        | Ok ValueNone -> Ok None
        | Error e -> Error e

    /// A required vector of tables.
    let tablesReq (t: FbTable) (slot: int) (field: string) (childName: string) : Result<FbTable[], DecodeError> =
        tables t slot field childName |> required t field

    /// Applies a decoder to every table in order, stopping at the first error.
    let traverse (read: FbTable -> Result<'a, DecodeError>) (ts: FbTable[]) : Result<'a list, DecodeError> =
        let rec go i acc =
            if i < 0 then
                Ok acc
            else
                match read ts[i] with
                | Ok v -> go (i - 1) (v :: acc)
                | Error e -> Error e

        go (ts.Length - 1) []

    /// A union stored in `typeSlot` (u8 tag) and `valueSlot` (offset to a table). Exactly one of
    /// the two present is an error; tag 0 (NONE) yields `NoValue` without following the value.
    let union
        (t: FbTable)
        (typeSlot: int)
        (valueSlot: int)
        (field: string)
        (childName: byte -> string)
        : Result<FbUnion, DecodeError> =
        result {
            let hasType = isPresent t typeSlot
            let hasValue = isPresent t valueSlot

            if hasType <> hasValue then
                return! invalid (fieldName t field) "union tag and value must be both present or both absent"

            if not hasType then
                return FbUnion.NoValue
            else
                let! tag = u8 t typeSlot (field + "_type") 0uy

                if tag = 0uy then
                    return FbUnion.NoValue
                else
                    let! v = tableReq t valueSlot field (childName tag)
                    return FbUnion.Value(tag, v)
        }

    // ---------------------------------------------------------------- builder

    let private inlineSize (f: FbField) : int =
        match f with
        | FbField.Bool _
        | FbField.U8 _ -> 1
        | FbField.U16 _ -> 2
        | FbField.U32 _
        | FbField.I32 _ -> 4
        | FbField.U64 _
        | FbField.I64 _ -> 8
        | FbField.Bytes _
        | FbField.String _
        | FbField.U16s _
        | FbField.U32s _
        | FbField.U64s _
        | FbField.Table _
        | FbField.Tables _ -> 4

    let private slotOf (f: FbField) : int =
        match f with
        | FbField.Bool(s, _)
        | FbField.U8(s, _)
        | FbField.U16(s, _)
        | FbField.U32(s, _)
        | FbField.I32(s, _)
        | FbField.U64(s, _)
        | FbField.I64(s, _)
        | FbField.Bytes(s, _)
        | FbField.String(s, _)
        | FbField.U16s(s, _)
        | FbField.U32s(s, _)
        | FbField.U64s(s, _)
        | FbField.Table(s, _)
        | FbField.Tables(s, _) -> s

    /// Writes a vector header so that the body starts aligned to `elemAlign`; returns its position.
    let private vectorHeader (w: FbWriter) (elemAlign: int) (count: int) : int =
        let a = max 4 elemAlign
        w.PadTo(a, (a - 4) % a)
        let p = w.Reserve 4
        BinaryPrimitives.WriteUInt32LittleEndian(w.Span(p, 4), uint32 count)
        p

    /// Writes a scalar vector; `write pos i` stores element `i` at `pos`.
    let private writeScalars (w: FbWriter) (size: int) (count: int) (write: int -> int -> unit) : int =
        let p = vectorHeader w size count
        let body = w.Reserve(size * count)

        for i in 0 .. count - 1 do
            write (body + i * size) i

        p

    let rec private writeTable (w: FbWriter) (fields: FbField list) : int =
        let slots = fields |> List.map slotOf

        if slots |> List.exists (fun s -> s < 0 || s > 1000) then
            invalidArg "fields" "slot out of range"

        if List.length (List.distinct slots) <> List.length slots then
            invalidArg "fields" "duplicate slot"

        // Inline layout relative to the table start: largest fields first, each naturally aligned.
        let ordered = fields |> List.sortByDescending inlineSize

        let placed, tableSize =
            ordered
            |> List.mapFold
                (fun cursor f ->
                    let sz = inlineSize f
                    let off = (cursor + sz - 1) / sz * sz
                    (f, off), off + sz)
                4

        let maxAlign = ordered |> List.fold (fun a f -> max a (inlineSize f)) 4
        let nSlots = if List.isEmpty slots then 0 else List.max slots + 1
        let vtLen = 4 + 2 * nSlots

        if vtLen > 0xFFFF || tableSize > 0xFFFF then
            invalidArg "fields" "table too large"

        w.PadTo(2, 0)
        let vt = w.Reserve vtLen
        BinaryPrimitives.WriteUInt16LittleEndian(w.Span(vt, 2), uint16 vtLen)
        BinaryPrimitives.WriteUInt16LittleEndian(w.Span(vt + 2, 2), uint16 tableSize)

        for f, off in placed do
            BinaryPrimitives.WriteUInt16LittleEndian(w.Span(vt + 4 + 2 * slotOf f, 2), uint16 off)

        w.PadTo(maxAlign, 0)
        let tp = w.Reserve tableSize
        BinaryPrimitives.WriteInt32LittleEndian(w.Span(tp, 4), tp - vt)

        let patch (at: int) (target: int) =
            BinaryPrimitives.WriteUInt32LittleEndian(w.Span(at, 4), uint32 (target - at))

        // Scalars first, then children after the table (uoffsets point forwards).
        for f, off in placed do
            let at = tp + off

            match f with
            | FbField.Bool(_, v) -> w.Span(at, 1)[0] <- (if v then 1uy else 0uy)
            | FbField.U8(_, v) -> w.Span(at, 1)[0] <- v
            | FbField.U16(_, v) -> BinaryPrimitives.WriteUInt16LittleEndian(w.Span(at, 2), v)
            | FbField.U32(_, v) -> BinaryPrimitives.WriteUInt32LittleEndian(w.Span(at, 4), v)
            | FbField.I32(_, v) -> BinaryPrimitives.WriteInt32LittleEndian(w.Span(at, 4), v)
            | FbField.U64(_, v) -> BinaryPrimitives.WriteUInt64LittleEndian(w.Span(at, 8), v)
            | FbField.I64(_, v) -> BinaryPrimitives.WriteInt64LittleEndian(w.Span(at, 8), v)
            | _ -> ()

        for f, off in placed do
            let at = tp + off

            match f with
            | FbField.Bool _
            | FbField.U8 _
            | FbField.U16 _
            | FbField.U32 _
            | FbField.I32 _
            | FbField.U64 _
            | FbField.I64 _ -> ()
            | FbField.Bytes(_, v) ->
                let v = if isNull v then [||] else v
                let p = vectorHeader w 1 v.Length
                w.Append(ReadOnlySpan v)
                patch at p
            | FbField.String(_, v) ->
                let b = Text.Encoding.UTF8.GetBytes(if isNull v then "" else v)
                let p = vectorHeader w 1 b.Length
                w.Append(ReadOnlySpan b)
                w.Reserve 1 |> ignore
                patch at p
            | FbField.U16s(_, v) ->
                let p =
                    writeScalars w 2 v.Length (fun at i ->
                        BinaryPrimitives.WriteUInt16LittleEndian(w.Span(at, 2), v[i]))

                patch at p
            | FbField.U32s(_, v) ->
                let p =
                    writeScalars w 4 v.Length (fun at i ->
                        BinaryPrimitives.WriteUInt32LittleEndian(w.Span(at, 4), v[i]))

                patch at p
            | FbField.U64s(_, v) ->
                let p =
                    writeScalars w 8 v.Length (fun at i ->
                        BinaryPrimitives.WriteUInt64LittleEndian(w.Span(at, 8), v[i]))

                patch at p
            | FbField.Table(_, sub) -> patch at (writeTable w sub)
            | FbField.Tables(_, subs) ->
                let p = vectorHeader w 4 (List.length subs)
                let elems = w.Reserve(4 * List.length subs)
                patch at p

                subs |> List.iteri (fun i sub -> patch (elems + 4 * i) (writeTable w sub))

        tp

    /// Serialises a root table. Every listed field is written (omit defaults by not listing them);
    /// slots must be distinct and in 0..1000. Throws `ArgumentException` only for such programming
    /// errors, never for values.
    let build (root: FbField list) : byte[] =
        let w = FbWriter()
        let rootAt = w.Reserve 4
        let tp = writeTable w root
        BinaryPrimitives.WriteUInt32LittleEndian(w.Span(rootAt, 4), uint32 (tp - rootAt))
        w.ToArray()
