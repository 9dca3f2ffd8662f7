/// FlatBuffers codecs of the SST metadata tables (SPEC §4.9, §4.13): `SsTableInfo` (footer meta
/// block and manifest copy), `SsTableIndex` / `BlockMeta` (index block body) and `SstStats` /
/// `BlockStats` (stats block body). Storage format: slot numbers are on disk.
namespace Slate.Model

/// Encode/decode `SsTableInfo`, the index and the stats FlatBuffers.
[<RequireQualifiedAccess>]
module SstInfoCodec =
    let private invalid (what: string) (detail: string) : Result<'a, DecodeError> =
        Error(DecodeError.Invalid(what, detail))

    /// The fields of an `SsTableInfo` table (for embedding it, e.g. in a manifest entry).
    /// `first_entry`/`last_entry` only when Some; offsets, lengths, codec and type always;
    /// `stats_offset`/`stats_len` only when non-zero; `filter_format` only when not Legacy (Slate
    /// never produces Composite; it is kept only so that a copied later-SlateDB info is not lost).
    let infoFields (info: SsTableInfo) : FbField list =
        [ match info.FirstEntry with
          | Some k -> FbField.Bytes(0, k)
          | None -> ()
          FbField.U64(1, info.IndexOffset)
          FbField.U64(2, info.IndexLen)
          FbField.U64(3, info.FilterOffset)
          FbField.U64(4, info.FilterLen)
          FbField.U8(5, byte info.Compression)
          FbField.U8(6, byte info.SstType)
          match info.LastEntry with
          | Some k -> FbField.Bytes(7, k)
          | None -> ()
          if info.StatsOffset <> 0UL then
              FbField.U64(8, info.StatsOffset)
          if info.StatsLen <> 0UL then
              FbField.U64(9, info.StatsLen)
          if info.FilterFormat <> FilterFormat.Legacy then
              FbField.U8(10, byte info.FilterFormat) ]

    /// Reads an `SsTableInfo` table. Unknown `compression_format`, `sst_type` or
    /// `filter_format` values are `Invalid`.
    let readInfo (t: FbTable) : Result<SsTableInfo, DecodeError> =
        result {
            let! first = FlatBuf.bytes t 0 "first_entry"
            let! indexOffset = FlatBuf.u64 t 1 "index_offset" 0UL
            let! indexLen = FlatBuf.u64 t 2 "index_len" 0UL
            let! filterOffset = FlatBuf.u64 t 3 "filter_offset" 0UL
            let! filterLen = FlatBuf.u64 t 4 "filter_len" 0UL
            let! codec = FlatBuf.u8 t 5 "compression_format" 0uy
            let! sstType = FlatBuf.u8 t 6 "sst_type" 0uy
            let! last = FlatBuf.bytes t 7 "last_entry"
            let! statsOffset = FlatBuf.u64 t 8 "stats_offset" 0UL
            let! statsLen = FlatBuf.u64 t 9 "stats_len" 0UL
            let! filterFormat = FlatBuf.u8 t 10 "filter_format" 0uy

            if codec > 4uy then
                return! invalid (t.Name + ".compression_format") (sprintf "unknown compression codec %d" codec)

            if sstType > 1uy then
                return! invalid (t.Name + ".sst_type") (sprintf "unknown SST type %d" sstType)

            if filterFormat > 1uy then
                return! invalid (t.Name + ".filter_format") (sprintf "unknown filter format %d" filterFormat)

            return
                { FirstEntry = first
                  LastEntry = last
                  IndexOffset = indexOffset
                  IndexLen = indexLen
                  FilterOffset = filterOffset
                  FilterLen = filterLen
                  Compression = enum<CompressionCodec> (int codec)
                  SstType = enum<SstType> (int sstType)
                  StatsOffset = statsOffset
                  StatsLen = statsLen
                  FilterFormat = enum<FilterFormat> (int filterFormat) }
        }

    /// The `SsTableInfo` FlatBuffer (the SST meta block body, before its CRC).
    let encodeInfo (info: SsTableInfo) : byte[] = FlatBuf.build (infoFields info)

    /// Decodes and verifies an `SsTableInfo` FlatBuffer.
    let decodeInfo (bytes: byte[]) : Result<SsTableInfo, DecodeError> =
        FlatBuf.root "SsTableInfo" (System.ReadOnlyMemory bytes) |> Result.bind readInfo

    /// The fields of a `BlockMeta` table.
    let blockMetaFields (m: BlockMeta) : FbField list =
        [ FbField.U64(0, m.Offset); FbField.Bytes(1, m.FirstKey) ]

    /// Reads a `BlockMeta` table (`first_key` required).
    let readBlockMeta (t: FbTable) : Result<BlockMeta, DecodeError> =
        result {
            let! offset = FlatBuf.u64 t 0 "offset" 0UL
            let! key = FlatBuf.bytesReq t 1 "first_key"
            return { Offset = offset; FirstKey = key }
        }

    /// The `SsTableIndex` FlatBuffer (index block body) listing one `BlockMeta` per data block.
    let encodeIndex (metas: BlockMeta[]) : byte[] =
        FlatBuf.build [ FbField.Tables(0, metas |> Array.toList |> List.map blockMetaFields) ]

    /// Decodes and verifies an `SsTableIndex` FlatBuffer (`block_meta` required).
    let decodeIndex (bytes: byte[]) : Result<BlockMeta[], DecodeError> =
        result {
            let! root = FlatBuf.root "SsTableIndex" (System.ReadOnlyMemory bytes)
            let! metas = FlatBuf.tablesReq root 0 "block_meta" "BlockMeta"
            let! list = FlatBuf.traverse readBlockMeta metas
            return Array.ofList list
        }

    let private blockStatsFields (b: BlockStats) : FbField list =
        [ FbField.U16(0, b.NumPuts)
          FbField.U16(1, b.NumDeletes)
          FbField.U16(2, b.NumMerges) ]

    let private readBlockStats (t: FbTable) : Result<BlockStats, DecodeError> =
        result {
            let! p = FlatBuf.u16 t 0 "num_puts" 0us
            let! d = FlatBuf.u16 t 1 "num_deletes" 0us
            let! m = FlatBuf.u16 t 2 "num_merges" 0us

            return
                { NumPuts = p
                  NumDeletes = d
                  NumMerges = m }
        }

    /// The `SstStats` FlatBuffer (stats block body); `block_stats` omitted when empty.
    let encodeStats (s: SstStats) : byte[] =
        FlatBuf.build
            [ FbField.U64(0, s.NumPuts)
              FbField.U64(1, s.NumDeletes)
              FbField.U64(2, s.NumMerges)
              FbField.U64(3, s.RawKeySize)
              FbField.U64(4, s.RawValSize)
              if not (List.isEmpty s.BlockStats) then
                  FbField.Tables(5, s.BlockStats |> List.map blockStatsFields) ]

    /// Decodes and verifies an `SstStats` FlatBuffer (absent `block_stats` = empty list).
    let decodeStats (bytes: byte[]) : Result<SstStats, DecodeError> =
        result {
            let! t = FlatBuf.root "SstStats" (System.ReadOnlyMemory bytes)
            let! puts = FlatBuf.u64 t 0 "num_puts" 0UL
            let! deletes = FlatBuf.u64 t 1 "num_deletes" 0UL
            let! merges = FlatBuf.u64 t 2 "num_merges" 0UL
            let! keySize = FlatBuf.u64 t 3 "raw_key_size" 0UL
            let! valSize = FlatBuf.u64 t 4 "raw_val_size" 0UL
            let! blocks = FlatBuf.tables t 5 "block_stats" "BlockStats"
            let! blockStats = FlatBuf.traverse readBlockStats (Option.defaultValue [||] blocks)

            return
                { NumPuts = puts
                  NumDeletes = deletes
                  NumMerges = merges
                  RawKeySize = keySize
                  RawValSize = valSize
                  BlockStats = blockStats }
        }
