/// The manifest file codec (SPEC §4.12, §4.14): `version:u16be ‖ FlatBuffer`. Slate writes
/// version 1 (`ManifestV1`) and reads versions 1 and 2 (`ManifestV2`, views resolved to SSTs).
/// Storage format: slot numbers are on disk.
namespace Slate.Model

open System

/// Encode/decode manifest files.
[<RequireQualifiedAccess>]
module ManifestCodec =
    /// The format version Slate writes.
    let version: uint16 = 1us

    let private invalid (what: string) (detail: string) : Result<'a, DecodeError> =
        Error(DecodeError.Invalid(what, detail))

    // ------------------------------------------------------------------ common tables

    /// Fields of a `Ulid` table.
    let ulidFields (u: Ulid) : FbField list =
        [ FbField.U64(0, u.High); FbField.U64(1, u.Low) ]

    /// Reads a `Ulid` table.
    let readUlid (t: FbTable) : Result<Ulid, DecodeError> =
        result {
            let! high = FlatBuf.u64 t 0 "high" 0UL
            let! low = FlatBuf.u64 t 1 "low" 0UL
            return { Ulid.High = high; Low = low }
        }

    let private uuidFields (u: Uuid) : FbField list =
        [ FbField.U64(0, u.High); FbField.U64(1, u.Low) ]

    let private readUuid (t: FbTable) : Result<Uuid, DecodeError> =
        result {
            let! high = FlatBuf.u64 t 0 "high" 0UL
            let! low = FlatBuf.u64 t 1 "low" 0UL
            return { Uuid.High = high; Low = low }
        }

    let private boundFields (b: KeyBound) : FbField list =
        match b with
        | KeyBound.Unbounded -> [ FbField.U8(1, 1uy) ]
        | KeyBound.Included k -> [ FbField.Bytes(0, k); FbField.U8(1, 2uy) ]
        | KeyBound.Excluded k -> [ FbField.Bytes(0, k); FbField.U8(1, 3uy) ]

    let private readBound (t: FbTable) : Result<KeyBound, DecodeError> =
        result {
            let! key = FlatBuf.bytes t 0 "key"
            let! kind = FlatBuf.u8 t 1 "bound_type" 0uy

            match kind, key with
            | 1uy, None -> return KeyBound.Unbounded
            | 1uy, Some _ -> return! invalid (t.Name + ".key") "an Unbounded bound must have no key"
            | 2uy, Some k -> return KeyBound.Included k
            | 3uy, Some k -> return KeyBound.Excluded k
            | (2uy | 3uy), None -> return! invalid (t.Name + ".key") "a bounded bound needs a key"
            | k, _ -> return! invalid (t.Name + ".bound_type") (sprintf "unsupported bound type %d" k)
        }

    /// Fields of a `BytesRange` table.
    let rangeFields (r: BytesRange) : FbField list =
        [ FbField.Table(0, boundFields r.Start); FbField.Table(1, boundFields r.End) ]

    /// Reads a `BytesRange` table.
    let readRange (t: FbTable) : Result<BytesRange, DecodeError> =
        result {
            let! s = FlatBuf.tableReq t 0 "start_bound" (t.Name + ".start_bound")
            let! e = FlatBuf.tableReq t 1 "end_bound" (t.Name + ".end_bound")
            let! start = readBound s
            let! finish = readBound e
            return { Start = start; End = finish }
        }

    // ------------------------------------------------------------------ SST entries

    /// Fields of a `CompactedSsTable` table (`visible_range` only when Some, `format_version`
    /// always).
    let sstFields (h: SstHandle) : FbField list =
        [ FbField.Table(0, ulidFields h.Id)
          FbField.Table(1, SstInfoCodec.infoFields h.Info)
          match h.VisibleRange with
          | Some r -> FbField.Table(2, rangeFields r)
          | None -> ()
          FbField.U16(3, h.FormatVersion) ]

    /// Reads a `CompactedSsTable` table (absent `format_version` = 1).
    let readSst (t: FbTable) : Result<SstHandle, DecodeError> =
        result {
            let! idT = FlatBuf.tableReq t 0 "id" (t.Name + ".id")
            let! id = readUlid idT
            let! infoT = FlatBuf.tableReq t 1 "info" (t.Name + ".info")
            let! info = SstInfoCodec.readInfo infoT
            let! rangeT = FlatBuf.table t 2 "visible_range" (t.Name + ".visible_range")

            let! range =
                match rangeT with
                | Some r -> readRange r |> Result.map Some
                | None -> Ok None

            let! fv = FlatBuf.u16Opt t 3 "format_version"

            return
                { Id = id
                  Info = info
                  FormatVersion = Option.defaultValue 1us fv
                  VisibleRange = range }
        }

    let private sortedRunFields (sr: SortedRun) : FbField list =
        [ FbField.U32(0, sr.Id); FbField.Tables(1, sr.Ssts |> List.map sstFields) ]

    let private readSortedRun (t: FbTable) : Result<SortedRun, DecodeError> =
        result {
            let! id = FlatBuf.u32 t 0 "id" 0u
            let! ssts = FlatBuf.tablesReq t 1 "ssts" (t.Name + ".ssts")
            let! handles = FlatBuf.traverse readSst ssts
            return { Id = id; Ssts = handles }
        }

    // ------------------------------------------------------------------ checkpoints, clones

    let private checkpointFields (c: Checkpoint) : FbField list =
        [ FbField.Table(0, uuidFields c.Id)
          FbField.U64(1, c.ManifestId)
          FbField.U32(2, Option.defaultValue 0u c.ExpireTimeS)
          FbField.U32(3, c.CreateTimeS)
          match c.Name with
          | Some n -> FbField.String(6, n)
          | None -> () ]

    let private readCheckpoint (t: FbTable) : Result<Checkpoint, DecodeError> =
        result {
            let! idT = FlatBuf.tableReq t 0 "id" (t.Name + ".id")
            let! id = readUuid idT
            let! manifestId = FlatBuf.u64 t 1 "manifest_id" 0UL
            let! expire = FlatBuf.u32 t 2 "checkpoint_expire_time_s" 0u
            let! create = FlatBuf.u32 t 3 "checkpoint_create_time_s" 0u
            // metadata is verified (tag/value consistency, table shape) and then ignored
            let! _metadata =
                FlatBuf.union t 4 5 "metadata" (fun tag ->
                    if tag = 1uy then
                        t.Name + ".metadata(WriterCheckpoint)"
                    else
                        sprintf "%s.metadata(%d)" t.Name tag)

            let! name = FlatBuf.string t 6 "name"

            return
                { Id = id
                  ManifestId = manifestId
                  ExpireTimeS = (if expire = 0u then None else Some expire)
                  CreateTimeS = create
                  Name = name }
        }

    let private externalDbFields (e: ExternalDb) : FbField list =
        [ FbField.String(0, e.Path)
          FbField.Table(1, uuidFields e.SourceCheckpointId)
          match e.FinalCheckpointId with
          | Some u -> FbField.Table(2, uuidFields u)
          | None -> ()
          FbField.Tables(3, e.SstIds |> List.map ulidFields) ]

    let private readExternalDb (t: FbTable) : Result<ExternalDb, DecodeError> =
        result {
            let! path = FlatBuf.stringReq t 0 "path"
            let! srcT = FlatBuf.tableReq t 1 "source_checkpoint_id" (t.Name + ".source_checkpoint_id")
            let! src = readUuid srcT
            let! finT = FlatBuf.table t 2 "final_checkpoint_id" (t.Name + ".final_checkpoint_id")

            let! fin =
                match finT with
                | Some f -> readUuid f |> Result.map Some
                | None -> Ok None

            let! idsT = FlatBuf.tablesReq t 3 "sst_ids" (t.Name + ".sst_ids")
            let! ids = FlatBuf.traverse readUlid idsT

            return
                { Path = path
                  SourceCheckpointId = src
                  FinalCheckpointId = fin
                  SstIds = ids }
        }

    // ------------------------------------------------------------------ manifest

    /// The `ManifestV1` FlatBuffer (without the version prefix).
    let encodeV1Body (m: Manifest) : byte[] =
        FlatBuf.build
            [ FbField.U64(0, 0UL)
              if not (List.isEmpty m.ExternalDbs) then
                  FbField.Tables(1, m.ExternalDbs |> List.map externalDbFields)
              FbField.Bool(2, m.Initialized)
              FbField.U64(3, m.WriterEpoch)
              FbField.U64(4, m.CompactorEpoch)
              FbField.U64(5, m.ReplayAfterWalId)
              FbField.U64(6, m.WalIdLastSeen)
              match m.L0LastCompacted with
              | Some u -> FbField.Table(7, ulidFields u)
              | None -> ()
              FbField.Tables(8, m.L0 |> List.map sstFields)
              FbField.Tables(9, m.Compacted |> List.map sortedRunFields)
              FbField.I64(10, m.LastL0ClockTick)
              FbField.Tables(11, m.Checkpoints |> List.map checkpointFields)
              FbField.U64(12, m.LastL0Seq)
              match m.WalObjectStoreUri with
              | Some uri -> FbField.String(13, uri)
              | None -> ()
              FbField.U64(14, m.RecentSnapshotMinSeq)
              FbField.Bytes(15, m.SequenceTracker) ]

    /// The manifest file: `u16be 1 ‖ ManifestV1`. `manifest_id` is written as 0 (the id is the
    /// file name); `external_dbs` is omitted when empty; `wal_object_store_uri` only when Some.
    let encode (m: Manifest) : byte[] =
        let body = encodeV1Body m
        let out = Array.zeroCreate (body.Length + 2)
        BigEndian.writeU16 (Span(out, 0, 2)) version
        Buffer.BlockCopy(body, 0, out, 2, body.Length)
        out

    /// Reads slot `slot` as the sequence-tracker blob: validated, the empty tracker when absent.
    let private readTracker (t: FbTable) (slot: int) : Result<byte[], DecodeError> =
        result {
            match! FlatBuf.bytes t slot "sequence_tracker" with
            | None -> return SequenceTracker.encode SequenceTracker.empty
            | Some blob ->
                match SequenceTracker.decode blob with
                | Ok _ -> return blob
                | Error e -> return! Error(DecodeError.within (t.Name + ".sequence_tracker") e)
        }

    let private optional (read: FbTable -> Result<'a, DecodeError>) (t: FbTable option) =
        match t with
        | Some x -> read x |> Result.map Some
        | None -> Ok None

    let private readExternalDbs (t: FbTable) : Result<ExternalDb list, DecodeError> =
        result {
            let! dbs = FlatBuf.tables t 1 "external_dbs" (t.Name + ".external_dbs")
            return! FlatBuf.traverse readExternalDb (Option.defaultValue [||] dbs)
        }

    let private decodeV1 (t: FbTable) : Result<Manifest, DecodeError> =
        result {
            let! _manifestId = FlatBuf.u64 t 0 "manifest_id" 0UL
            let! externalDbs = readExternalDbs t
            let! initialized = FlatBuf.bool t 2 "initialized" false
            let! writerEpoch = FlatBuf.u64 t 3 "writer_epoch" 0UL
            let! compactorEpoch = FlatBuf.u64 t 4 "compactor_epoch" 0UL
            let! replayAfter = FlatBuf.u64 t 5 "replay_after_wal_id" 0UL
            let! walLastSeen = FlatBuf.u64 t 6 "wal_id_last_seen" 0UL
            let! markT = FlatBuf.table t 7 "l0_last_compacted" "ManifestV1.l0_last_compacted"
            let! mark = optional readUlid markT
            let! l0T = FlatBuf.tablesReq t 8 "l0" "ManifestV1.l0"
            let! l0 = FlatBuf.traverse readSst l0T
            let! srT = FlatBuf.tablesReq t 9 "compacted" "ManifestV1.compacted"
            let! srs = FlatBuf.traverse readSortedRun srT
            let! tick = FlatBuf.i64 t 10 "last_l0_clock_tick" 0L
            let! cpT = FlatBuf.tablesReq t 11 "checkpoints" "ManifestV1.checkpoints"
            let! cps = FlatBuf.traverse readCheckpoint cpT
            let! lastSeq = FlatBuf.u64 t 12 "last_l0_seq" 0UL
            let! uri = FlatBuf.string t 13 "wal_object_store_uri"
            let! minSeq = FlatBuf.u64 t 14 "recent_snapshot_min_seq" 0UL
            let! tracker = readTracker t 15

            return
                { ExternalDbs = externalDbs
                  Initialized = initialized
                  WriterEpoch = writerEpoch
                  CompactorEpoch = compactorEpoch
                  ReplayAfterWalId = replayAfter
                  WalIdLastSeen = walLastSeen
                  L0LastCompacted = mark
                  L0 = l0
                  Compacted = srs
                  LastL0ClockTick = tick
                  Checkpoints = cps
                  LastL0Seq = lastSeq
                  WalObjectStoreUri = uri
                  RecentSnapshotMinSeq = minSeq
                  SequenceTracker = tracker }
        }

    /// A `CompactedSsTableV2`: (SST id, info, format version).
    let private readSstV2 (t: FbTable) : Result<Ulid * SsTableInfo * uint16, DecodeError> =
        result {
            let! idT = FlatBuf.tableReq t 0 "id" (t.Name + ".id")
            let! id = readUlid idT
            let! infoT = FlatBuf.tableReq t 1 "info" (t.Name + ".info")
            let! info = SstInfoCodec.readInfo infoT
            let! fv = FlatBuf.u16Opt t 2 "format_version"
            return id, info, Option.defaultValue 1us fv
        }

    /// A `CompactedSsTableView` resolved against the SST table: (view id, handle).
    let private readView (ssts: Map<Ulid, SsTableInfo * uint16>) (t: FbTable) : Result<Ulid * SstHandle, DecodeError> =
        result {
            let! viewT = FlatBuf.tableReq t 0 "id" (t.Name + ".id")
            let! viewId = readUlid viewT
            let! sstT = FlatBuf.tableReq t 1 "sst_id" (t.Name + ".sst_id")
            let! sstId = readUlid sstT
            let! rangeT = FlatBuf.table t 2 "visible_range" (t.Name + ".visible_range")
            let! range = optional readRange rangeT

            match Map.tryFind sstId ssts with
            | None -> return! invalid (t.Name + ".sst_id") (sprintf "view references unknown SST %O" sstId)
            | Some(info, fv) ->
                return
                    viewId,
                    { Id = sstId
                      Info = info
                      FormatVersion = fv
                      VisibleRange = range }
        }

    let private decodeV2 (t: FbTable) : Result<Manifest, DecodeError> =
        result {
            if FlatBuf.isPresent t 16 || FlatBuf.isPresent t 17 then
                return! invalid "ManifestV2" "segments are not supported"

            let! _manifestId = FlatBuf.u64 t 0 "manifest_id" 0UL
            let! externalDbs = readExternalDbs t
            let! initialized = FlatBuf.bool t 2 "initialized" false
            let! writerEpoch = FlatBuf.u64 t 3 "writer_epoch" 0UL
            let! compactorEpoch = FlatBuf.u64 t 4 "compactor_epoch" 0UL
            let! replayAfter = FlatBuf.u64 t 5 "replay_after_wal_id" 0UL
            let! walLastSeen = FlatBuf.u64 t 6 "wal_id_last_seen" 0UL
            let! markT = FlatBuf.table t 7 "last_compacted_l0_sst_view_id" "ManifestV2.last_compacted_l0_sst_view_id"
            let! markView = optional readUlid markT
            let! sstT = FlatBuf.tablesReq t 8 "ssts" "ManifestV2.ssts"
            let! sstList = FlatBuf.traverse readSstV2 sstT
            let ssts = sstList |> List.map (fun (id, info, fv) -> id, (info, fv)) |> Map.ofList
            let! l0T = FlatBuf.tablesReq t 9 "l0" "ManifestV2.l0"
            let! l0 = FlatBuf.traverse (readView ssts) l0T
            let! srT = FlatBuf.tablesReq t 10 "compacted" "ManifestV2.compacted"

            let! srs =
                srT
                |> FlatBuf.traverse (fun sr ->
                    result {
                        let! id = FlatBuf.u32 sr 0 "id" 0u
                        let! views = FlatBuf.tablesReq sr 1 "ssts" (sr.Name + ".ssts")
                        let! handles = FlatBuf.traverse (readView ssts) views
                        return id, handles
                    })

            let! tick = FlatBuf.i64 t 11 "last_l0_clock_tick" 0L
            let! cpT = FlatBuf.tablesReq t 12 "checkpoints" "ManifestV2.checkpoints"
            let! cps = FlatBuf.traverse readCheckpoint cpT
            let! lastSeq = FlatBuf.u64 t 13 "last_l0_seq" 0UL
            let! minSeq = FlatBuf.u64 t 14 "recent_snapshot_min_seq" 0UL
            let! tracker = readTracker t 15

            // The L0 marker is a view id: map it to its SST when the view is still listed,
            // otherwise keep the id (its timestamp is what GC and L0 ordering rely on).
            let allViews = l0 @ (srs |> List.collect snd)

            let mark =
                markView
                |> Option.map (fun v ->
                    match allViews |> List.tryFind (fun (vid, _) -> vid = v) with
                    | Some(_, h) -> h.Id
                    | None -> v)

            return
                { ExternalDbs = externalDbs
                  Initialized = initialized
                  WriterEpoch = writerEpoch
                  CompactorEpoch = compactorEpoch
                  ReplayAfterWalId = replayAfter
                  WalIdLastSeen = walLastSeen
                  L0LastCompacted = mark
                  L0 = l0 |> List.map snd
                  Compacted = srs |> List.map (fun (id, vs) -> { Id = id; Ssts = List.map snd vs })
                  LastL0ClockTick = tick
                  Checkpoints = cps
                  LastL0Seq = lastSeq
                  WalObjectStoreUri = None
                  RecentSnapshotMinSeq = minSeq
                  SequenceTracker = tracker }
        }

    /// Decodes a manifest file of version 1 or 2; other versions are `UnsupportedVersion`.
    /// The FlatBuffer is fully verified; the sequence-tracker blob must decode.
    let decode (bytes: byte[]) : Result<Manifest, DecodeError> =
        if isNull bytes || bytes.Length < 2 then
            Error(DecodeError.Truncated("manifest version", 0))
        else
            let v = BigEndian.u16 (ReadOnlySpan bytes) 0
            let body = ReadOnlyMemory(bytes, 2, bytes.Length - 2)

            match v with
            | 1us -> FlatBuf.root "ManifestV1" body |> Result.bind decodeV1
            | 2us -> FlatBuf.root "ManifestV2" body |> Result.bind decodeV2
            | _ -> Error(DecodeError.UnsupportedVersion("manifest", int v))
