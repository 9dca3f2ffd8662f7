/// The compactor state file (`.compactions`, SPEC §4.16, §5.8): compaction jobs, their specs and
/// statuses, and its codec. Storage format: slot numbers, union tags and status codes are on disk.
namespace Slate.Model

open System

/// A compaction job's status (`Compaction.status`, stored as a byte).
[<RequireQualifiedAccess>]
type CompactionStatus =
    /// Proposed or submitted, not started (0).
    | Submitted
    /// Validated and executing (1).
    | Running
    /// Committed to the manifest (2).
    | Completed
    /// Refused by validation or failed while running (3).
    | Failed

/// What a job compacts (`TieredCompactionSpec`). Sources = `L0` followed by `SortedRuns`.
type CompactionSpec =
    {
        /// Source L0 SST ids, newest first.
        L0: Ulid list
        /// Source sorted-run ids, highest first.
        SortedRuns: uint32 list
        /// Destination sorted-run id. Not stored in version 1: on decode it is slot 4 when present
        /// (version 2), else the lowest source SR id, else 0 for an L0-only spec, which must be
        /// recomputed against the manifest (`CompactionSpec.resolveDestination`).
        Destination: uint32
    }

/// One job of the compactor state.
type Compaction =
    {
        /// Job id (ULID minted from the injected clock when the job is created).
        Id: Ulid
        /// Its sources and destination.
        Spec: CompactionSpec
        /// Its status.
        Status: CompactionStatus
        /// Outputs (Slate does not resume half-done jobs and may leave this empty).
        OutputSsts: SstHandle list
    }

/// The content of one `.compactions` file.
type CompactorState =
    {
        /// Equals the manifest's `compactor_epoch` of the compactor that wrote it.
        CompactorEpoch: uint64
        /// Recent jobs (active ones plus the most recent finished one).
        Compactions: Compaction list
    }

/// Functions over compaction specs.
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module CompactionSpec =
    /// True when the spec reads L0 SSTs.
    let hasL0 (s: CompactionSpec) : bool = not (List.isEmpty s.L0)

    /// The lowest SR id among the sources, if any.
    let lowestSortedRun (s: CompactionSpec) : uint32 option =
        if List.isEmpty s.SortedRuns then
            None
        else
            Some(List.min s.SortedRuns)

    /// The destination for an L0-only job against `m`: the highest SR id + 1, or 0 without SRs;
    /// None when the highest id is `UInt32.MaxValue`.
    let l0Destination (m: Manifest) : uint32 option =
        match m.Compacted with
        | [] -> Some 0u
        | srs ->
            let highest = srs |> List.map (fun sr -> sr.Id) |> List.max

            if highest = UInt32.MaxValue then
                None
            else
                Some(highest + 1u)

    /// Re-derives the destination against the manifest the job is validated on (SPEC §4.16): with
    /// SR sources, the lowest of them; L0-only, the stored destination when it lies above every
    /// existing SR id, else the highest SR id + 1 (or 0). Unchanged when no valid id exists.
    let resolveDestination (m: Manifest) (s: CompactionSpec) : CompactionSpec =
        match lowestSortedRun s with
        | Some low -> { s with Destination = low }
        | None ->
            let aboveAll = m.Compacted |> List.forall (fun sr -> sr.Id < s.Destination)

            if aboveAll then
                s
            else
                match l0Destination m with
                | Some d -> { s with Destination = d }
                | None -> s

/// Functions over the compactor state.
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module CompactorState =
    /// The state file the compactor creates at id 1 when none exists.
    let initial: CompactorState =
        { CompactorEpoch = 0UL
          Compactions = [] }

    /// True for Submitted and Running jobs.
    let isActive (c: Compaction) : bool =
        match c.Status with
        | CompactionStatus.Submitted
        | CompactionStatus.Running -> true
        | CompactionStatus.Completed
        | CompactionStatus.Failed -> false

    /// The active jobs, in state order.
    let active (s: CompactorState) : Compaction list = s.Compactions |> List.filter isActive

    /// Finds a job by id.
    let tryFind (id: Ulid) (s: CompactorState) : Compaction option =
        s.Compactions |> List.tryFind (fun c -> c.Id = id)

    /// Replaces the job with the same id, or appends it.
    let upsert (job: Compaction) (s: CompactorState) : CompactorState =
        if s.Compactions |> List.exists (fun c -> c.Id = job.Id) then
            { s with
                Compactions = s.Compactions |> List.map (fun c -> if c.Id = job.Id then job else c) }
        else
            { s with
                Compactions = s.Compactions @ [ job ] }

    /// Keeps the active jobs and the most recent finished one (highest job ULID), in state order.
    /// Exactly one finished job survives even if ids repeat (a hand-edited or corrupt state file):
    /// the first finished job carrying the highest id.
    let trim (s: CompactorState) : CompactorState =
        let finished = s.Compactions |> List.indexed |> List.filter (snd >> isActive >> not)

        let keep =
            match finished with
            | [] -> -1
            | fs ->
                let top = fs |> List.map (fun (_, c) -> c.Id) |> List.max
                fs |> List.find (fun (_, c) -> c.Id = top) |> fst

        { s with
            Compactions =
                s.Compactions
                |> List.indexed
                |> List.filter (fun (i, c) -> isActive c || i = keep)
                |> List.map snd }

    /// A (re)starting compactor's view: every Running job goes back to Submitted (SPEC §5.8).
    let resetRunning (s: CompactorState) : CompactorState =
        { s with
            Compactions =
                s.Compactions
                |> List.map (fun c ->
                    if c.Status = CompactionStatus.Running then
                        { c with
                            Status = CompactionStatus.Submitted }
                    else
                        c) }

/// Encode/decode `.compactions` files: `version:u16be ‖ FlatBuffer CompactionsV1`.
[<RequireQualifiedAccess>]
module CompactionStateCodec =
    /// The format version Slate writes.
    let version: uint16 = 1us

    let private invalid (what: string) (detail: string) : Result<'a, DecodeError> =
        Error(DecodeError.Invalid(what, detail))

    let private statusCode (s: CompactionStatus) : byte =
        match s with
        | CompactionStatus.Submitted -> 0uy
        | CompactionStatus.Running -> 1uy
        | CompactionStatus.Completed -> 2uy
        | CompactionStatus.Failed -> 3uy

    let private specFields (s: CompactionSpec) : FbField list =
        // As SlateDB 0.12: only non-empty vectors are written; the deprecated slot 0 never.
        [ if not (List.isEmpty s.SortedRuns) then
              FbField.U32s(1, Array.ofList s.SortedRuns)
          if not (List.isEmpty s.L0) then
              FbField.Tables(2, s.L0 |> List.map ManifestCodec.ulidFields) ]

    let private compactionFields (c: Compaction) : FbField list =
        [ FbField.Table(0, ManifestCodec.ulidFields c.Id)
          FbField.U8(1, 1uy)
          FbField.Table(2, specFields c.Spec)
          FbField.U8(3, statusCode c.Status)
          if not (List.isEmpty c.OutputSsts) then
              FbField.Tables(4, c.OutputSsts |> List.map ManifestCodec.sstFields) ]

    /// The `CompactionsV1` FlatBuffer (without the version prefix).
    let encodeBody (s: CompactorState) : byte[] =
        FlatBuf.build
            [ FbField.U64(0, s.CompactorEpoch)
              FbField.Tables(1, s.Compactions |> List.map compactionFields) ]

    /// The file: `u16be 1 ‖ CompactionsV1`. Destinations are not stored (version 1).
    let encode (s: CompactorState) : byte[] =
        let body = encodeBody s
        let out = Array.zeroCreate (body.Length + 2)
        BigEndian.writeU16 (Span(out, 0, 2)) version
        Buffer.BlockCopy(body, 0, out, 2, body.Length)
        out

    let private readUlids (t: FbTable) (slot: int) (field: string) : Result<Ulid list option, DecodeError> =
        result {
            match! FlatBuf.tables t slot field (t.Name + "." + field) with
            | None -> return None
            | Some ts ->
                let! ids = FlatBuf.traverse ManifestCodec.readUlid ts
                return Some ids
        }

    let private readSpec (t: FbTable) : Result<CompactionSpec, DecodeError> =
        result {
            let! deprecated = readUlids t 0 "ssts"
            let! srs = FlatBuf.u32s t 1 "sorted_runs"
            let! views = readUlids t 2 "l0_view_ids"
            let! segment = FlatBuf.bytes t 3 "segment"

            if segment |> Option.exists (fun seg -> seg.Length > 0) then
                return! invalid (t.Name + ".segment") "segments are not supported"

            let! dest = FlatBuf.u32Opt t 4 "destination"

            let l0 =
                match views, deprecated with
                | Some v, _ -> v
                | None, Some d -> d
                | None, None -> []

            let srs = srs |> Option.map List.ofArray |> Option.defaultValue []

            let destination =
                match dest with
                | Some d -> d
                | None -> if List.isEmpty srs then 0u else List.min srs

            return
                { L0 = l0
                  SortedRuns = srs
                  Destination = destination }
        }

    let private readCompaction (t: FbTable) : Result<Compaction, DecodeError> =
        result {
            let! idT = FlatBuf.tableReq t 0 "id" (t.Name + ".id")
            let! id = ManifestCodec.readUlid idT

            let! spec =
                FlatBuf.union t 1 2 "spec" (fun tag ->
                    match tag with
                    | 1uy -> t.Name + ".spec(TieredCompactionSpec)"
                    | 2uy -> t.Name + ".spec(DrainSegmentSpec)"
                    | _ -> sprintf "%s.spec(%d)" t.Name tag)

            let! spec =
                match spec with
                | FbUnion.NoValue -> invalid (t.Name + ".spec") "missing compaction spec"
                | FbUnion.Value(1uy, st) -> readSpec st
                | FbUnion.Value(2uy, _) -> invalid (t.Name + ".spec") "DrainSegmentSpec is not supported"
                | FbUnion.Value(tag, _) -> invalid (t.Name + ".spec_type") (sprintf "unknown spec type %d" tag)

            let! code = FlatBuf.u8 t 3 "status" 0uy

            let! status =
                match code with
                | 0uy -> Ok CompactionStatus.Submitted
                | 1uy -> Ok CompactionStatus.Running
                | 2uy -> Ok CompactionStatus.Completed
                | 3uy -> Ok CompactionStatus.Failed
                | c -> invalid (t.Name + ".status") (sprintf "unknown status %d" c)

            let! outT = FlatBuf.tables t 4 "output_ssts" (t.Name + ".output_ssts")
            let! outputs = FlatBuf.traverse ManifestCodec.readSst (Option.defaultValue [||] outT)

            return
                { Id = id
                  Spec = spec
                  Status = status
                  OutputSsts = outputs }
        }

    let private decodeBody (t: FbTable) : Result<CompactorState, DecodeError> =
        result {
            let! epoch = FlatBuf.u64 t 0 "compactor_epoch" 0UL
            let! jobsT = FlatBuf.tablesReq t 1 "recent_compactions" (t.Name + ".recent_compactions")
            let! jobs = FlatBuf.traverse readCompaction jobsT

            return
                { CompactorEpoch = epoch
                  Compactions = jobs }
        }

    /// Decodes a `.compactions` file of version 1 or 2 (other versions: `UnsupportedVersion`).
    /// Version 2 segments and drain specs are refused with `Invalid`. Never throws.
    let decode (bytes: byte[]) : Result<CompactorState, DecodeError> =
        if isNull bytes || bytes.Length < 2 then
            Error(DecodeError.Truncated("compactions version", 0))
        else
            let v = BigEndian.u16 (ReadOnlySpan bytes) 0
            let body = ReadOnlyMemory(bytes, 2, bytes.Length - 2)

            match v with
            | 1us
            | 2us -> FlatBuf.root "CompactionsV1" body |> Result.bind decodeBody
            | _ -> Error(DecodeError.UnsupportedVersion("compactions", int v))
