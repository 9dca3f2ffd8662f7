/// Reading what real SlateDB 0.12.1 wrote (../shared/compat): every case decodes and matches
/// expected.json, both through the pure Model (manifest + SSTs + WAL, merged by seq) and through the
/// engine's read path.
module Slate.Properties.CompatTests

open System
open System.IO
open System.Text.Json
open Expecto
open Slate
open Slate.Model
open Slate.Engine
open Slate.Properties.TestUtil

[<NoComparison; NoEquality>]
type private Expected =
    { Entries: (string * string * int64 option) list
      Deleted: string list
      Expired: string list
      Absent: string list
      Merge: bool
      Root: JsonElement }

let private strings (e: JsonElement) (name: string) =
    match e.TryGetProperty name with
    | true, a -> [ for x in a.EnumerateArray() -> x.GetString() ]
    | _ -> []

let private entriesOf (e: JsonElement) =
    [ for x in e.EnumerateArray() ->
          let exp =
              match x.TryGetProperty "expire_ts" with
              | true, v when v.ValueKind = JsonValueKind.Number -> Some(v.GetInt64())
              | _ -> None

          x.GetProperty("key_hex").GetString(), x.GetProperty("value_hex").GetString(), exp ]

let private load (case: string) : Expected =
    let doc =
        JsonDocument.Parse(File.ReadAllText(Path.Combine(compatDir (), case, "expected.json")))

    let r = doc.RootElement

    let merge =
        match r.GetProperty("read_requirements").TryGetProperty "merge_operator" with
        | true, v when v.ValueKind = JsonValueKind.String -> v.GetString() = "concat"
        | _ -> false

    { Entries = entriesOf (r.GetProperty "entries")
      Deleted = strings r "deleted_keys"
      Expired =
        match r.TryGetProperty "expired" with
        | true, a -> [ for x in a.EnumerateArray() -> x.GetProperty("key_hex").GetString() ]
        | _ -> []
      Absent = strings r "absent_keys"
      Merge = merge
      Root = r }

let cases () : string list =
    Directory.GetDirectories(compatDir ())
    |> Array.filter (fun d -> File.Exists(Path.Combine(d, "expected.json")))
    |> Array.map Path.GetFileName
    |> Array.sort
    |> List.ofArray

let private valueOf (r: RowEntry) =
    match r.Value with
    | RowValue.Value v -> v
    | other -> failtestf "resolved row is not a value: %A" other

let private asTriples (rows: RowEntry list) =
    rows
    |> List.map (fun r -> Bytes.toHex r.Key, Bytes.toHex (valueOf r), r.ExpireTs)

/// Compares with expected entries; expire_ts only where expected.json gives it.
let private expectEntries
    (label: string)
    (expected: (string * string * int64 option) list)
    (actual: (string * string * int64 option) list)
    =
    Expect.equal (List.map (fun (k, _, _) -> k) actual) (List.map (fun (k, _, _) -> k) expected) (label + ": keys")

    for ((k, v, e), (_, av, ae)) in List.zip expected actual do
        Expect.equal av v (sprintf "%s: value of %s" label k)

        match e with
        | Some _ -> Expect.equal ae e (sprintf "%s: expire_ts of %s" label k)
        | None -> ()

/// The pure path: decode files directly and merge by sequence number.
let private pureRows
    (dbDir: string)
    (manifestId: uint64 option)
    (walUpTo: uint64 option)
    (mergeOp: MergeOperator option)
    =
    let manifestDir = Path.Combine(dbDir, "manifest")

    let id =
        match manifestId with
        | Some id -> id
        | None ->
            Directory.GetFiles manifestDir
            |> Array.choose (fun f -> Paths.parseFile Paths.ManifestDir (Path.GetFileName f))
            |> Array.map (function
                | ObjectName.Manifest id -> id
                | _ -> 0UL)
            |> Array.max

    let m =
        File.ReadAllBytes(Path.Combine(dbDir, Paths.relative (ObjectName.Manifest id)))
        |> ManifestCodec.decode
        |> okOrFail

    let sstRows =
        Manifest.allSsts m
        |> List.map (fun h ->
            let bytes =
                File.ReadAllBytes(Path.Combine(dbDir, Paths.relative (ObjectName.Compacted h.Id)))

            let meta = Sst.openBytes bytes |> okOrFail
            Expect.equal meta.Info h.Info (sprintf "manifest copy of SsTableInfo of %s" (Ulid.toString h.Id))
            Expect.equal meta.FormatVersion h.FormatVersion "format version"
            Sst.readAll bytes |> okOrFail |> Seq.ofList)

    let walRows =
        Seq.initInfinite (fun i -> m.ReplayAfterWalId + 1UL + uint64 i)
        |> Seq.takeWhile (fun id ->
            match walUpTo with
            | Some last -> id <= last
            | None -> File.Exists(Path.Combine(dbDir, Paths.relative (ObjectName.Wal id))))
        |> Seq.collect (fun id ->
            let bytes =
                File.ReadAllBytes(Path.Combine(dbDir, Paths.relative (ObjectName.Wal id)))

            if bytes.Length = 0 then
                []
            else
                Sst.readAll bytes |> okOrFail)
        |> Seq.filter (fun r -> r.Seq > m.LastL0Seq)
        |> Seq.sortWith Merge.compareRows
        |> List.ofSeq

    let merged = Merge.mergeSorted (Seq.ofList walRows :: sstRows)

    match Merge.visible mergeOp UInt64.MaxValue merged with
    | Ok rows -> rows
    | Error e -> failtestf "resolve failed: %A" e

let private withCopy (case: string) (f: string -> unit) =
    let tmp = tempDir ("compat-" + case)

    try
        copyTree (Path.Combine(compatDir (), case, "db")) (Path.Combine(tmp, case, "db"))
        f tmp
    finally
        cleanup tmp

let private caseTests (case: string) =
    let e = lazy (load case)

    let mergeOp () =
        if e.Value.Merge then Some Inspector.concatMerge else None

    testList
        case
        [ test "the Model alone (manifest, SSTs, WAL tail merged by seq) reproduces expected.json" {
              let rows = pureRows (Path.Combine(compatDir (), case, "db")) None None (mergeOp ())
              expectEntries case e.Value.Entries (asTriples rows)
          }

          test "the engine read path (scan and point gets) reproduces expected.json" {
              withCopy case (fun root ->
                  let store = LocalFileObjectStore(root)

                  let db =
                      (Inspector.loadAsync store (case + "/db") None None Threading.CancellationToken.None).Result

                  let rows =
                      (Inspector.scanAllAsync db (mergeOp ()) Threading.CancellationToken.None).Result

                  expectEntries case e.Value.Entries (asTriples rows)

                  let get (hex: string) =
                      (Inspector.getAsync db (mergeOp ()) (Bytes.ofHex hex) Threading.CancellationToken.None).Result

                  for (k, v, _) in e.Value.Entries do
                      match get k with
                      | Some r -> Expect.equal (Bytes.toHex (valueOf r)) v (sprintf "get %s" k)
                      | None -> failtestf "get %s returned nothing" k

                  for k in e.Value.Deleted @ e.Value.Expired @ e.Value.Absent do
                      Expect.isNone (get k) (sprintf "get %s must be absent" k)

                  // descending scan is the reverse
                  let it = Inspector.iterator db (mergeOp ()) KeyRange.all true
                  let desc = (it.NextBatchAsync(100000, Threading.CancellationToken.None)).Result
                  Expect.equal (asTriples desc) (List.rev (asTriples rows)) "descending scan")
          }

          test "every SST and WAL file verifies (all CRCs, filter and stats decode)" {
              let dir = Path.Combine(compatDir (), case, "db")

              for sub in [ "compacted"; "wal" ] do
                  let d = Path.Combine(dir, sub)

                  if Directory.Exists d then
                      for f in Directory.GetFiles d do
                          let bytes = File.ReadAllBytes f

                          if bytes.Length > 0 then
                              match Sst.verifyAll bytes with
                              | Ok _ -> ()
                              | Error err -> failtestf "%s: %s" f (DecodeError.describe err)
          } ]

let private checkpointTests =
    test "checkpoint case: a reader pinned to the checkpoint's manifest sees the frozen state" {
        let e = load "checkpoint"
        let cp = e.Root.GetProperty("checkpoints")[0]
        let manifestId = cp.GetProperty("manifest_id").GetUInt64()
        let expected = entriesOf (cp.GetProperty "entries")
        let dbDir = Path.Combine(compatDir (), "checkpoint", "db")

        let m =
            File.ReadAllBytes(Path.Combine(dbDir, Paths.relative (ObjectName.Manifest manifestId)))
            |> ManifestCodec.decode
            |> okOrFail

        let rows = pureRows dbDir (Some manifestId) (Some m.WalIdLastSeen) None
        expectEntries "checkpoint (pure)" expected (asTriples rows)

        withCopy "checkpoint" (fun root ->
            let store = LocalFileObjectStore(root)

            let db =
                (Inspector.loadAsync
                    store
                    "checkpoint/db"
                    (Some manifestId)
                    (Some m.WalIdLastSeen)
                    Threading.CancellationToken.None)
                    .Result

            let rows = (Inspector.scanAllAsync db None Threading.CancellationToken.None).Result
            expectEntries "checkpoint (engine)" expected (asTriples rows)

            // the latest manifest names the checkpoint
            let latest =
                (Inspector.loadAsync store "checkpoint/db" None None Threading.CancellationToken.None).Result

            let id = Guid.Parse(cp.GetProperty("id").GetString())

            Expect.exists
                latest.Manifest.Manifest.Checkpoints
                (fun c -> Uuid.toGuid c.Id = id && c.ManifestId = manifestId)
                "checkpoint listed in the latest manifest")
    }

let private walRowsTest =
    test "wal-only case: every raw WAL row decodes with its kind, seq and timestamps" {
        let e = load "wal-only"
        let dbDir = Path.Combine(compatDir (), "wal-only", "db")

        let expectedRows =
            [ for x in e.Root.GetProperty("wal_rows").EnumerateArray() ->
                  let num (n: string) =
                      match x.TryGetProperty n with
                      | true, v when v.ValueKind = JsonValueKind.Number -> Some(v.GetInt64())
                      | _ -> None

                  x.GetProperty("wal_id").GetUInt64(),
                  x.GetProperty("kind").GetString(),
                  x.GetProperty("key_hex").GetString(),
                  (match x.TryGetProperty "value_hex" with
                   | true, v when v.ValueKind = JsonValueKind.String -> v.GetString()
                   | _ -> ""),
                  x.GetProperty("seq").GetUInt64(),
                  num "create_ts",
                  num "expire_ts" ]

        let actual =
            expectedRows
            |> List.map (fun (w, _, _, _, _, _, _) -> w)
            |> List.distinct
            |> List.collect (fun w ->
                let bytes =
                    File.ReadAllBytes(Path.Combine(dbDir, Paths.relative (ObjectName.Wal w)))

                Sst.readAll bytes
                |> okOrFail
                |> List.map (fun r ->
                    let kind, v =
                        match r.Value with
                        | RowValue.Value v -> "Value", v
                        | RowValue.Merge v -> "Merge", v
                        | RowValue.Tombstone -> "Tombstone", [||]

                    w, kind, Bytes.toHex r.Key, Bytes.toHex v, r.Seq, r.CreateTs, r.ExpireTs))

        Expect.equal actual.Length expectedRows.Length "row count"

        for (a, x) in List.zip actual expectedRows do
            let (w, k, key, v, s, c, ex) = x
            let (aw, ak, akey, av, aseq, ac, aex) = a
            Expect.equal (aw, ak, akey, av, aseq) (w, k, key, v, s) "row identity"
            Expect.equal ac c "create_ts"
            Expect.equal aex ex "expire_ts"
    }

let allTests =
    testList "Compat" [ yield! cases () |> List.map caseTests; checkpointTests; walRowsTest ]
