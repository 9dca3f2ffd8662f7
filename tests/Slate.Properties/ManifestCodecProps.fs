module Slate.Properties.ManifestCodecProps

open System
open System.IO
open System.Text.Json
open Expecto
open FsCheck
open FsCheck.FSharp
open Slate.Model
open Slate.Properties.TestUtil

// ---------------------------------------------------------------- generators

let private anyInt: Gen<int> = ArbMap.defaults.ArbFor<int>().Generator

let private u32Gen: Gen<uint32> =
    Gen.frequency
        [ 3, Gen.choose (0, 100_000) |> Gen.map uint32
          1, Gen.elements [ 0u; 1u; UInt32.MaxValue ]
          1, Gen.map2 (fun (a: int) (b: int) -> (uint32 (uint16 a) <<< 16) ||| uint32 (uint16 b)) anyInt anyInt ]

let private u64Gen: Gen<uint64> =
    Gen.frequency
        [ 3, Gen.choose (0, 100_000) |> Gen.map uint64
          1, Gen.elements [ 0UL; 1UL; UInt64.MaxValue; 1UL <<< 63 ]
          1, Gen.map2 (fun a b -> (uint64 a <<< 32) ||| uint64 b) u32Gen u32Gen ]

let private ulidGen: Gen<Ulid> =
    Gen.map2 (fun h l -> { Ulid.High = h; Low = l }) u64Gen u64Gen

let private uuidGen: Gen<Uuid> =
    Gen.map2 (fun h l -> { Uuid.High = h; Low = l }) u64Gen u64Gen

let private textGen: Gen<string> =
    Gen.listOf (Gen.elements [ "a"; "db"; "/"; "-"; "."; "é"; "😀"; "0" ])
    |> Gen.map (String.concat "")

let private keyOptGen: Gen<byte[] option> =
    Gen.frequency
        [ 1, Gen.constant None
          1, Gen.constant (Some [||])
          4, Generators.keyGen |> Gen.map Some ]

/// Any `SsTableInfo` the codec can represent (all enum values, every option).
let infoGen: Gen<SsTableInfo> =
    gen {
        let! first = keyOptGen
        let! last = keyOptGen
        let! io = u64Gen
        let! il = u64Gen
        let! fo = u64Gen
        let! fl = u64Gen
        let! codec = Gen.elements (Enum.GetValues<CompressionCodec>() |> List.ofArray)
        let! kind = Gen.elements [ SstType.Compacted; SstType.Wal ]
        let! so = u64Gen
        let! sl = u64Gen
        let! ff = Gen.frequency [ 5, Gen.constant FilterFormat.Legacy; 1, Gen.constant FilterFormat.Composite ]

        return
            { FirstEntry = first
              LastEntry = last
              IndexOffset = io
              IndexLen = il
              FilterOffset = fo
              FilterLen = fl
              Compression = codec
              SstType = kind
              StatsOffset = so
              StatsLen = sl
              FilterFormat = ff }
    }

let private boundGen: Gen<KeyBound> =
    Gen.frequency
        [ 1, Gen.constant KeyBound.Unbounded
          2, Generators.keyGen |> Gen.map KeyBound.Included
          2, Generators.keyGen |> Gen.map KeyBound.Excluded ]

let private handleGen: Gen<SstHandle> =
    gen {
        let! id = ulidGen
        let! info = infoGen

        let! fv =
            Gen.frequency
                [ 4, Gen.constant 2us
                  1, Gen.constant 1us
                  1, Gen.choose (0, 65535) |> Gen.map uint16 ]

        let! range = Gen.optionOf (Gen.map2 (fun s e -> { Start = s; End = e }) boundGen boundGen)

        return
            { Id = id
              Info = info
              FormatVersion = fv
              VisibleRange = range }
    }

let private smallList (g: Gen<'a>) : Gen<'a list> =
    Gen.choose (0, 4) |> Gen.bind (fun n -> Gen.listOfLength n g)

let private checkpointGen: Gen<Checkpoint> =
    gen {
        let! id = uuidGen
        let! mid = u64Gen
        let! expire = Gen.optionOf (u32Gen |> Gen.map (fun v -> max 1u v))
        let! create = u32Gen
        let! name = Gen.optionOf textGen

        return
            { Id = id
              ManifestId = mid
              ExpireTimeS = expire
              CreateTimeS = create
              Name = name }
    }

let private externalDbGen: Gen<ExternalDb> =
    gen {
        let! path = textGen
        let! src = uuidGen
        let! fin = Gen.optionOf uuidGen
        let! ids = smallList ulidGen

        return
            { Path = path
              SourceCheckpointId = src
              FinalCheckpointId = fin
              SstIds = ids }
    }

let private trackerBlobGen: Gen<byte[]> =
    gen {
        let! n = Gen.choose (0, 6)
        let! seqs = Gen.listOfLength n (Gen.choose (0, 1000) |> Gen.map uint64)
        let! times = Gen.listOfLength n (Gen.choose (0, 100_000) |> Gen.map int64)

        return
            SequenceTracker.encode
                { Seqs = seqs |> List.sort |> Array.ofList
                  Times = times |> List.sort |> Array.ofList }
    }

/// Random manifests covering every field and option.
let manifestGen: Gen<Manifest> =
    gen {
        let! ext = smallList externalDbGen
        let! init = Gen.elements [ true; false ]
        let! we = u64Gen
        let! ce = u64Gen
        let! ra = u64Gen
        let! wl = u64Gen
        let! mark = Gen.optionOf ulidGen
        let! l0 = smallList handleGen
        let! srs = smallList (Gen.map2 (fun id ssts -> { Id = id; Ssts = ssts }) u32Gen (smallList handleGen))
        let! tick = Gen.frequency [ 1, Gen.constant Int64.MinValue; 3, u64Gen |> Gen.map int64 ]
        let! cps = smallList checkpointGen
        let! ls = u64Gen
        let! uri = Gen.optionOf textGen
        let! ms = u64Gen
        let! tracker = trackerBlobGen

        return
            { ExternalDbs = ext
              Initialized = init
              WriterEpoch = we
              CompactorEpoch = ce
              ReplayAfterWalId = ra
              WalIdLastSeen = wl
              L0LastCompacted = mark
              L0 = l0
              Compacted = srs
              LastL0ClockTick = tick
              Checkpoints = cps
              LastL0Seq = ls
              WalObjectStoreUri = uri
              RecentSnapshotMinSeq = ms
              SequenceTracker = tracker }
    }

let private blockMetaGen: Gen<BlockMeta> =
    Gen.map2 (fun o k -> { Offset = o; FirstKey = k }) u64Gen (Gen.oneof [ Gen.constant [||]; Generators.keyGen ])

let private statsGen: Gen<SstStats> =
    gen {
        let! p = u64Gen
        let! d = u64Gen
        let! m = u64Gen
        let! k = u64Gen
        let! v = u64Gen
        let u16g = Gen.choose (0, 65535) |> Gen.map uint16

        let! blocks =
            Gen.listOf (
                Gen.map3
                    (fun a b c ->
                        { NumPuts = a
                          NumDeletes = b
                          NumMerges = c })
                    u16g
                    u16g
                    u16g
            )

        return
            { NumPuts = p
              NumDeletes = d
              NumMerges = m
              RawKeySize = k
              RawValSize = v
              BlockStats = blocks }
    }

// ---------------------------------------------------------------- compat helpers

/// The folder holding `slatedb-0.12.1`, from SLATE_SHARED_DIR or by walking up.
let private compatRoot () : string option =
    let fromEnv =
        match Environment.GetEnvironmentVariable "SLATE_SHARED_DIR" with
        | null
        | "" -> None
        | d -> Some(Path.Combine(d, "compat"))

    let rec walk (dir: DirectoryInfo) =
        if isNull dir then
            None
        else
            let candidates =
                [ Path.Combine(dir.FullName, "shared", "compat")
                  Path.Combine(dir.FullName, "compat") ]

            match
                candidates
                |> List.tryFind (fun c -> Directory.Exists(Path.Combine(c, "slatedb-0.12.1")))
            with
            | Some c -> Some c
            | None -> walk dir.Parent

    match fromEnv with
    | Some d when Directory.Exists d -> Some d
    | _ -> walk (DirectoryInfo AppContext.BaseDirectory)

/// (case folder, manifest files sorted) for every compat case.
let private compatCases () : (string * string[]) list =
    match compatRoot () with
    | None -> []
    | Some root ->
        Directory.GetDirectories(Path.Combine(root, "slatedb-0.12.1"))
        |> Array.sort
        |> Array.choose (fun case ->
            let md = Path.Combine(case, "db", "manifest")

            if Directory.Exists md then
                Some(case, Directory.GetFiles(md, "*.manifest") |> Array.sort)
            else
                None)
        |> List.ofArray

let private withCompat (f: (string * string[]) list -> unit) : unit =
    match compatCases () with
    | [] -> skiptest "compat vectors not found (set SLATE_SHARED_DIR)"
    | cases -> f cases

/// The `SsTableInfo` in an SST file's footer: last 10 bytes = meta_off:u64be ‖ version:u16be;
/// the info is `[meta_off, len - 14)` followed by its CRC32 (big-endian).
let private footerInfo (file: byte[]) : SsTableInfo * uint16 =
    let n = file.Length
    let metaOff = int (BigEndian.u64 (ReadOnlySpan file) (n - 10))
    let version = BigEndian.u16 (ReadOnlySpan file) (n - 2)
    let body = file[metaOff .. n - 15]
    let crc = BigEndian.u32 (ReadOnlySpan file) (n - 14)
    Expect.equal (Crc32.ofArray body) crc "SsTableInfo CRC"
    (SstInfoCodec.decodeInfo body |> okOrFail), version

let private hex (b: byte[] option) = b |> Option.map Bytes.toHex

let private jsonStr (e: JsonElement) (name: string) : string option =
    match e.GetProperty(name) with
    | p when p.ValueKind = JsonValueKind.Null -> None
    | p -> Some(p.GetString())

let private checkHandle (caseName: string) (exp: JsonElement) (h: SstHandle) =
    let what = sprintf "%s %O" caseName h.Id
    Expect.equal (string h.Id) (exp.GetProperty("id").GetString()) (what + " id")
    Expect.equal (hex h.Info.FirstEntry) (jsonStr exp "first_key_hex") (what + " first key")
    Expect.equal (hex h.Info.LastEntry) (jsonStr exp "last_key_hex") (what + " last key")
    Expect.equal h.Info.FilterLen (exp.GetProperty("filter_len").GetUInt64()) (what + " filter_len")

    Expect.equal
        ((string h.Info.Compression).ToLowerInvariant())
        (exp.GetProperty("compression").GetString())
        (what + " compression")

    Expect.equal (int h.FormatVersion) (exp.GetProperty("sst_format_version").GetInt32()) (what + " format version")
    Expect.equal h.VisibleRange None (what + " visible range")
    Expect.equal h.Info.SstType SstType.Compacted (what + " sst type")
    Expect.equal h.Info.FilterFormat FilterFormat.Legacy (what + " filter format")

let private isError (r: Result<'a, DecodeError>) =
    match r with
    | Error _ -> true
    | Ok _ -> false

/// Decode without throwing (an exception fails the property).
let private decodeTotal (bytes: byte[]) : bool =
    match ManifestCodec.decode bytes with
    | Ok _
    | Error _ -> true

let allTests =
    testList
        "ManifestCodec"
        [ testProp "SsTableInfo round-trips"
          <| Prop.forAll (Arb.fromGen infoGen) (fun i -> SstInfoCodec.decodeInfo (SstInfoCodec.encodeInfo i) = Ok i)

          testProp "the index round-trips"
          <| Prop.forAll (Arb.fromGen (Gen.arrayOf blockMetaGen)) (fun metas ->
              SstInfoCodec.decodeIndex (SstInfoCodec.encodeIndex metas) = Ok metas)

          testProp "the stats round-trip"
          <| Prop.forAll (Arb.fromGen statsGen) (fun s -> SstInfoCodec.decodeStats (SstInfoCodec.encodeStats s) = Ok s)

          testProp "manifests round-trip: decode (encode m) = Ok m"
          <| Prop.forAll (Arb.fromGen manifestGen) (fun m -> ManifestCodec.decode (ManifestCodec.encode m) = Ok m)

          testProp "encode writes version 1, every required vector, and only the optional fields that are set"
          <| Prop.forAll (Arb.fromGen manifestGen) (fun m ->
              let bytes = ManifestCodec.encode m
              let t = FlatBuf.root "M" (ReadOnlyMemory(bytes, 2, bytes.Length - 2)) |> okOrFail

              bytes[0] = 0uy
              && bytes[1] = 1uy
              && FlatBuf.isPresent t 8
              && FlatBuf.isPresent t 9
              && FlatBuf.isPresent t 11
              && FlatBuf.isPresent t 15
              && FlatBuf.isPresent t 1 = not (List.isEmpty m.ExternalDbs)
              && FlatBuf.isPresent t 13 = m.WalObjectStoreUri.IsSome
              && FlatBuf.isPresent t 7 = m.L0LastCompacted.IsSome
              && FlatBuf.u64 t 0 "manifest_id" 99UL = Ok 0UL)

          test "a WAL SsTableInfo omits last_entry, stats and filter_format" {
              let info =
                  { FirstEntry = Some(BigEndian.bytesOfU64 7UL)
                    LastEntry = None
                    IndexOffset = 100UL
                    IndexLen = 30UL
                    FilterOffset = 100UL
                    FilterLen = 0UL
                    Compression = CompressionCodec.Lz4
                    SstType = SstType.Wal
                    StatsOffset = 0UL
                    StatsLen = 0UL
                    FilterFormat = FilterFormat.Legacy }

              let t = FlatBuf.root "I" (ReadOnlyMemory(SstInfoCodec.encodeInfo info)) |> okOrFail

              for slot in [ 7; 8; 9; 10 ] do
                  Expect.isFalse (FlatBuf.isPresent t slot) (sprintf "slot %d absent" slot)

              Expect.isTrue (FlatBuf.isPresent t 0) "first entry present"
              Expect.equal (SstInfoCodec.readInfo t) (Ok info) "reads back"
          }

          test "unknown enum values in SsTableInfo are rejected" {
              let fields (slot: int) (v: byte) =
                  [ FbField.U64(1, 1UL); FbField.U8(slot, v) ]

              for slot, bad in [ 5, 5uy; 6, 2uy; 10, 2uy ] do
                  match SstInfoCodec.decodeInfo (FlatBuf.build (fields slot bad)) with
                  | Error(DecodeError.Invalid _) -> ()
                  | other -> failtestf "slot %d value %d: expected Invalid, got %A" slot bad other

              Expect.isOk (SstInfoCodec.decodeInfo (FlatBuf.build (fields 10 1uy))) "Composite is accepted"
          }

          test "BlockMeta.first_key and SsTableIndex.block_meta are required" {
              Expect.isTrue (isError (SstInfoCodec.decodeIndex (FlatBuf.build []))) "no block_meta"

              let noKey = FlatBuf.build [ FbField.Tables(0, [ [ FbField.U64(0, 3UL) ] ]) ]
              Expect.isTrue (isError (SstInfoCodec.decodeIndex noKey)) "no first_key"
          }

          test "the initial manifest matches SPEC §4.14 and round-trips" {
              let m = Manifest.initial
              Expect.isTrue m.Initialized "initialized"
              Expect.equal m.LastL0ClockTick Int64.MinValue "clock tick"

              Expect.equal
                  (m.WriterEpoch, m.CompactorEpoch, m.ReplayAfterWalId, m.WalIdLastSeen)
                  (0UL, 0UL, 0UL, 0UL)
                  "zeros"

              Expect.equal (m.L0, m.Compacted, m.Checkpoints, m.ExternalDbs) ([], [], [], []) "empty lists"
              Expect.equal m.SequenceTracker.Length 13 "13-byte tracker"
              Expect.equal (ManifestCodec.decode (ManifestCodec.encode m)) (Ok m) "round trip"
          }

          test "other versions are UnsupportedVersion; short input is Truncated" {
              let body = ManifestCodec.encode Manifest.initial
              body[1] <- 3uy

              match ManifestCodec.decode body with
              | Error(DecodeError.UnsupportedVersion(_, 3)) -> ()
              | other -> failtestf "expected UnsupportedVersion, got %A" other

              Expect.isTrue (isError (ManifestCodec.decode [| 0uy |])) "1 byte"
              Expect.isTrue (isError (ManifestCodec.decode [||])) "empty"
          }

          test "a bad sequence tracker blob is rejected" {
              let m =
                  { Manifest.initial with
                      SequenceTracker = [| 9uy; 0uy |] }

              Expect.isTrue (isError (ManifestCodec.decode (ManifestCodec.encode m))) "undecodable blob"
          }

          test "ManifestV2: views resolve to SSTs; the L0 marker maps to its SST; segments are refused" {
              let sstA = { Ulid.High = 10UL; Low = 1UL }
              let viewA = { Ulid.High = 20UL; Low = 1UL }

              let info =
                  { FirstEntry = Some "a"B
                    LastEntry = Some "z"B
                    IndexOffset = 5UL
                    IndexLen = 6UL
                    FilterOffset = 5UL
                    FilterLen = 0UL
                    Compression = CompressionCodec.None
                    SstType = SstType.Compacted
                    StatsOffset = 0UL
                    StatsLen = 0UL
                    FilterFormat = FilterFormat.Legacy }

              let range =
                  { Start = KeyBound.Included "b"B
                    End = KeyBound.Excluded "c"B }

              let view (v: Ulid) (s: Ulid) (withRange: bool) =
                  [ FbField.Table(0, ManifestCodec.ulidFields v)
                    FbField.Table(1, ManifestCodec.ulidFields s)
                    if withRange then
                        FbField.Table(2, ManifestCodec.rangeFields range) ]

              let v2Fields extra =
                  [ FbField.Bool(2, true)
                    FbField.U64(3, 4UL)
                    FbField.Table(7, ManifestCodec.ulidFields viewA)
                    FbField.Tables(
                        8,
                        [ [ FbField.Table(0, ManifestCodec.ulidFields sstA)
                            FbField.Table(1, SstInfoCodec.infoFields info)
                            FbField.U16(2, 2us) ] ]
                    )
                    FbField.Tables(9, [ view viewA sstA true ])
                    FbField.Tables(
                        10,
                        [ [ FbField.U32(0, 3u)
                            FbField.Tables(1, [ view { viewA with Low = 2UL } sstA false ]) ] ]
                    )
                    FbField.I64(11, 77L)
                    FbField.Tables(12, [])
                    FbField.U64(13, 99UL)
                    FbField.Bytes(15, SequenceTracker.encode SequenceTracker.empty) ]
                  @ extra

              let file extra =
                  Array.append [| 0uy; 2uy |] (FlatBuf.build (v2Fields extra))

              let m = ManifestCodec.decode (file []) |> okOrFail

              let h =
                  { Id = sstA
                    Info = info
                    FormatVersion = 2us
                    VisibleRange = Some range }

              Expect.equal m.L0 [ h ] "L0 view resolved"

              Expect.equal
                  m.Compacted
                  [ { Id = 3u
                      Ssts = [ { h with VisibleRange = None } ] } ]
                  "SR view resolved"

              Expect.equal m.L0LastCompacted (Some sstA) "marker mapped to the SST"
              Expect.equal (m.WriterEpoch, m.LastL0ClockTick, m.LastL0Seq) (4UL, 77L, 99UL) "scalars"
              Expect.equal (ManifestCodec.decode (ManifestCodec.encode m)) (Ok m) "rewritten as V1"

              match ManifestCodec.decode (file [ FbField.String(17, "x") ]) with
              | Error(DecodeError.Invalid(_, d)) -> Expect.stringContains d "segments" "refused"
              | other -> failtestf "expected segments refusal, got %A" other

              let unknown =
                  Array.append
                      [| 0uy; 2uy |]
                      (FlatBuf.build (
                          (v2Fields [])
                          |> List.map (fun f ->
                              match f with
                              | FbField.Tables(9, _) -> FbField.Tables(9, [ view viewA { sstA with Low = 5UL } false ])
                              | f -> f)
                      ))

              Expect.isTrue (isError (ManifestCodec.decode unknown)) "unknown SST id"
          }

          testPropN 30 "random bytes after a valid version never make decode throw"
          <| fun (bytes: byte[]) (v2: bool) ->
              let bytes = if isNull bytes then [||] else bytes
              decodeTotal (Array.append [| 0uy; (if v2 then 2uy else 1uy) |] bytes)

          testPropN 20 "single-byte flips and truncations of encoded manifests never throw; truncations fail"
          <| Prop.forAll (Arb.fromGen manifestGen) (fun m ->
              let bytes = ManifestCodec.encode m

              let flips =
                  [ 0 .. bytes.Length - 1 ]
                  |> List.forall (fun i ->
                      let c = Array.copy bytes
                      c[i] <- c[i] ^^^ 0x5Auy
                      decodeTotal c)

              let cuts =
                  [ 0 .. bytes.Length - 1 ]
                  |> List.forall (fun n -> isError (ManifestCodec.decode (Array.sub bytes 0 n)))

              flips && cuts)

          test "every compat manifest decodes, re-encodes to the same manifest, and survives corruption" {
              withCompat (fun cases ->
                  for _, files in cases do
                      for f in files do
                          let bytes = File.ReadAllBytes f
                          let m = ManifestCodec.decode bytes |> okOrFail
                          Expect.equal (ManifestCodec.decode (ManifestCodec.encode m)) (Ok m) (f + " re-encodes")

                          let masks = [| 0x01uy; 0x80uy; 0xFFuy; 0x10uy |]

                          for i in 0 .. bytes.Length - 1 do
                              let c = Array.copy bytes
                              c[i] <- c[i] ^^^ masks[i % masks.Length]
                              decodeTotal c |> ignore

                          for n in 0 .. bytes.Length - 1 do
                              Expect.isTrue
                                  (isError (ManifestCodec.decode (Array.sub bytes 0 n)))
                                  (sprintf "%s truncated to %d" f n))
          }

          test "the latest compat manifests match expected.json's layout" {
              withCompat (fun cases ->
                  for case, files in cases do
                      use doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(case, "expected.json")))
                      let lm = doc.RootElement.GetProperty("layout").GetProperty("latest_manifest")
                      let name = Path.GetFileName case
                      let latest = Array.last files

                      Expect.equal
                          (Path.GetFileName latest)
                          (lm.GetProperty("file").GetString())
                          (name + " latest file")

                      let m = ManifestCodec.decode (File.ReadAllBytes latest) |> okOrFail
                      let u64 (p: string) = lm.GetProperty(p).GetUInt64()
                      Expect.equal m.WriterEpoch (u64 "writer_epoch") (name + " writer_epoch")
                      Expect.equal m.CompactorEpoch (u64 "compactor_epoch") (name + " compactor_epoch")
                      Expect.equal m.ReplayAfterWalId (u64 "replay_after_wal_id") (name + " replay_after_wal_id")
                      Expect.equal m.WalIdLastSeen (u64 "wal_id_last_seen") (name + " wal_id_last_seen")
                      Expect.equal m.LastL0Seq (u64 "last_l0_seq") (name + " last_l0_seq")
                      let tick = lm.GetProperty("last_l0_clock_tick")

                      let tick =
                          if tick.ValueKind = JsonValueKind.String then
                              Int64.Parse(tick.GetString())
                          else
                              tick.GetInt64()

                      Expect.equal m.LastL0ClockTick tick (name + " tick")
                      Expect.isTrue m.Initialized (name + " initialized")
                      Expect.equal m.ExternalDbs [] (name + " no external dbs")
                      Expect.equal m.WalObjectStoreUri None (name + " no WAL store")

                      let expL0 = lm.GetProperty("l0").EnumerateArray() |> List.ofSeq
                      Expect.equal m.L0.Length expL0.Length (name + " L0 count")
                      List.iter2 (checkHandle name) expL0 m.L0

                      let expSrs = lm.GetProperty("sorted_runs").EnumerateArray() |> List.ofSeq
                      Expect.equal m.Compacted.Length expSrs.Length (name + " SR count")

                      for exp, sr in List.zip expSrs m.Compacted do
                          Expect.equal sr.Id (exp.GetProperty("id").GetUInt32()) (name + " SR id")
                          let ssts = exp.GetProperty("ssts").EnumerateArray() |> List.ofSeq
                          Expect.equal sr.Ssts.Length ssts.Length (name + " SR size")
                          List.iter2 (checkHandle name) ssts sr.Ssts

                      let expCps = lm.GetProperty("checkpoints").EnumerateArray() |> List.ofSeq
                      Expect.equal m.Checkpoints.Length expCps.Length (name + " checkpoint count")

                      for exp, cp in List.zip expCps m.Checkpoints do
                          Expect.equal
                              (Uuid.toString cp.Id)
                              (exp.GetProperty("id").GetString())
                              (name + " checkpoint id")

                          Expect.equal
                              cp.ManifestId
                              (exp.GetProperty("manifest_id").GetUInt64())
                              (name + " cp manifest")

                          Expect.equal
                              cp.ExpireTimeS
                              (Some(exp.GetProperty("expire_time_s").GetUInt32()))
                              (name + " cp expiry")

                          Expect.equal
                              cp.CreateTimeS
                              (exp.GetProperty("create_time_s").GetUInt32())
                              (name + " cp create")

                          Expect.equal cp.Name (jsonStr exp "name") (name + " cp name")

                      if name = "checkpoint" then
                          let cp = doc.RootElement.GetProperty("checkpoints")[0]

                          Expect.equal
                              (m.Checkpoints |> List.map (fun c -> Uuid.toString c.Id))
                              [ cp.GetProperty("id").GetString() ]
                              "checkpoint id"

                          Expect.equal m.Checkpoints.Head.ManifestId 4UL "pins manifest 4"

                          Expect.isTrue
                              (files
                               |> Array.exists (fun f ->
                                   Path.GetFileName f = cp.GetProperty("manifest_file").GetString()))
                              "pinned file exists"

                          Expect.equal m.L0.Length 2 "two L0s"

                      if name = "compacted" then
                          Expect.equal m.Compacted.Length 1 "one sorted run"
                          Expect.isSome m.L0LastCompacted "L0 marker"
                          Expect.equal m.CompactorEpoch 1UL "compactor epoch")
          }

          test "every manifest SST entry equals the SsTableInfo in that SST's footer" {
              withCompat (fun cases ->
                  let mutable checkedCount = 0

                  for case, files in cases do
                      let compacted = Path.Combine(case, "db", "compacted")

                      for f in files do
                          let m = ManifestCodec.decode (File.ReadAllBytes f) |> okOrFail

                          for h in m.L0 @ (m.Compacted |> List.collect (fun sr -> sr.Ssts)) do
                              let path = Path.Combine(compacted, string h.Id + ".sst")

                              if File.Exists path then
                                  let sst = File.ReadAllBytes path
                                  let info, version = footerInfo sst
                                  Expect.equal h.Info info (sprintf "%s info" path)
                                  Expect.equal h.FormatVersion version (sprintf "%s version" path)
                                  checkedCount <- checkedCount + 1

                                  if info.Compression = CompressionCodec.None then
                                      let ix =
                                          sst[int info.IndexOffset .. int info.IndexOffset + int info.IndexLen - 5]

                                      let metas = SstInfoCodec.decodeIndex ix |> okOrFail
                                      Expect.isGreaterThan metas.Length 0 "index entries"
                                      Expect.equal metas[0].FirstKey [||] "block 0 separator is empty"
                                      Expect.equal metas[0].Offset 0UL "block 0 at 0"

                                      if info.StatsLen > 0UL then
                                          let st =
                                              sst[int info.StatsOffset .. int info.StatsOffset + int info.StatsLen - 5]

                                          let stats = SstInfoCodec.decodeStats st |> okOrFail
                                          Expect.equal stats.BlockStats.Length metas.Length "one BlockStats per block"

                  Expect.isGreaterThan checkedCount 20 "many SSTs checked")
          }

          test "WAL SST footers decode as WAL infos without last entry or stats" {
              withCompat (fun cases ->
                  let mutable seen = 0

                  for case, _ in cases do
                      for f in Directory.GetFiles(Path.Combine(case, "db", "wal"), "*.sst") do
                          let bytes = File.ReadAllBytes f

                          if bytes.Length > 10 then
                              let info, version = footerInfo bytes
                              Expect.equal version 2us (f + " version")
                              Expect.equal info.LastEntry None (f + " no last entry")
                              Expect.equal info.FilterLen 0UL (f + " no filter")

                              match info.FirstEntry with
                              | None ->
                                  // the fence SlateDB writes at writer open: a zero-row compacted SST
                                  Expect.equal info.SstType SstType.Compacted (f + " fence type")
                                  Expect.isGreaterThan info.StatsLen 0UL (f + " fence has stats")

                                  if info.Compression = CompressionCodec.None then
                                      let ix =
                                          bytes[int info.IndexOffset .. int info.IndexOffset + int info.IndexLen - 5]

                                      Expect.equal
                                          (SstInfoCodec.decodeIndex ix)
                                          (Ok [||])
                                          (f + " fence index is empty")
                              | Some first ->
                                  Expect.equal info.SstType SstType.Wal (f + " type")
                                  Expect.equal first.Length 8 (f + " first entry is a u64be seq")
                                  Expect.equal (info.StatsOffset, info.StatsLen) (0UL, 0UL) (f + " no stats")
                                  seen <- seen + 1

                  Expect.isGreaterThan seen 10 "many WAL SSTs")
          } ]
