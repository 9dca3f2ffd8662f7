/// `slate inspect`: the latest manifest, per-SST statistics and (with --scan) every live key.
module Slate.Cli.Inspect

open System
open System.Text
open System.Threading
open Slate
open Slate.Model
open Slate.Engine

let private hex (b: byte[]) = Bytes.toHex b

/// Shows a key readably: UTF-8 when printable, else hex.
let private show (b: byte[] option) =
    match b with
    | None -> "-"
    | Some b ->
        let printable = b |> Array.forall (fun c -> c >= 0x20uy && c < 0x7fuy)

        let s =
            if printable && b.Length > 0 then
                Encoding.ASCII.GetString b
            else
                "0x" + hex b

        if s.Length > 40 then s.Substring(0, 37) + "..." else s

let private table (headers: string list) (rows: string list list) =
    CliCommon.writeTable Console.Out "  " headers rows

let private sstRows (tables: TableStore) (ssts: SstHandle list) (ct: CancellationToken) =
    task {
        let acc = ResizeArray()

        for h in ssts do
            let! stats = tables.ReadStatsAsync(h, ct)
            let! o = tables.OpenAsync(h, ct)

            let rows =
                match stats with
                | Some s -> string (s.NumPuts + s.NumDeletes + s.NumMerges)
                | None -> "?"

            let puts, dels, merges =
                match stats with
                | Some s -> string s.NumPuts, string s.NumDeletes, string s.NumMerges
                | None -> "?", "?", "?"

            acc.Add
                [ Ulid.toString h.Id
                  string (h.Info.IndexOffset + h.Info.IndexLen)
                  rows
                  puts
                  dels
                  merges
                  string o.Meta.Index.Length
                  (if h.Info.FilterLen > 0UL then
                       string h.Info.FilterLen
                   else
                       "-")
                  string h.Info.Compression
                  show h.Info.FirstEntry
                  show h.Info.LastEntry ]

        return List.ofSeq acc
    }

let private sstHeaders =
    [ "sst"
      "size"
      "rows"
      "puts"
      "deletes"
      "merges"
      "blocks"
      "filter"
      "codec"
      "first key"
      "last key" ]

/// Runs the command; returns the exit code.
let run
    (store: IObjectStore)
    (storeUrl: string)
    (dbPath: string)
    (scan: bool)
    (json: bool)
    (mergeOp: MergeOperator option)
    : int =
    let ct = CancellationToken.None
    let db = (Inspector.loadAsync store dbPath None None ct).GetAwaiter().GetResult()
    let m = db.Manifest.Manifest

    if json && scan then
        let rows = (Inspector.scanAllAsync db mergeOp ct).GetAwaiter().GetResult()

        for r in rows do
            let v =
                match r.Value with
                | RowValue.Value v -> v
                | _ -> [||]

            printfn "{\"key_hex\":\"%s\",\"value_hex\":\"%s\"}" (hex r.Key) (hex v)
    else
        printfn "database     %s  path %s" storeUrl dbPath

        printfn
            "manifest     %d   writer_epoch %d   compactor_epoch %d   initialized %b"
            db.Manifest.Id
            m.WriterEpoch
            m.CompactorEpoch
            m.Initialized

        printfn
            "WAL          replay_after_wal_id %d   wal_id_last_seen %d   tail replayed: %s"
            m.ReplayAfterWalId
            m.WalIdLastSeen
            (match db.WalIds with
             | [] -> "none"
             | ids -> sprintf "%d..%d (%d files)" (List.head ids) (List.last ids) ids.Length)

        printfn
            "sequence     last_l0_seq %d   recent_snapshot_min_seq %d   visible up to %d"
            m.LastL0Seq
            m.RecentSnapshotMinSeq
            db.MaxSeq

        printfn
            "clock        last_l0_clock_tick %s"
            (if m.LastL0ClockTick = Int64.MinValue then
                 "none"
             else
                 DateTimeOffset.FromUnixTimeMilliseconds(m.LastL0ClockTick).ToString("O"))

        printfn
            "L0 marker    %s"
            (match m.L0LastCompacted with
             | Some u -> Ulid.toString u
             | None -> "none")

        printfn ""
        printfn "L0 SSTs: %d (newest first)" m.L0.Length

        if not m.L0.IsEmpty then
            table sstHeaders ((sstRows db.Tables m.L0 ct).GetAwaiter().GetResult())

        printfn ""
        printfn "Sorted runs: %d (highest id first)" m.Compacted.Length

        for sr in m.Compacted do
            let size = sr.Ssts |> List.sumBy (fun h -> h.Info.IndexOffset + h.Info.IndexLen)
            printfn "  SR %d: %d SSTs, %d bytes" sr.Id sr.Ssts.Length size
            table sstHeaders ((sstRows db.Tables sr.Ssts ct).GetAwaiter().GetResult())

        printfn ""
        printfn "Checkpoints: %d" m.Checkpoints.Length

        if not m.Checkpoints.IsEmpty then
            table
                [ "id"; "manifest"; "created"; "expires"; "name" ]
                [ for c in m.Checkpoints ->
                      [ Uuid.toString c.Id
                        string c.ManifestId
                        DateTimeOffset.FromUnixTimeSeconds(int64 c.CreateTimeS).ToString("u")
                        (match c.ExpireTimeS with
                         | Some e -> DateTimeOffset.FromUnixTimeSeconds(int64 e).ToString("u")
                         | None -> "never")
                        defaultArg c.Name "" ] ]

        let walRows = db.WalRows |> List.sumBy (fun (_, r) -> r.Length)
        printfn ""
        printfn "WAL tail: %d files, %d rows" db.WalRows.Length walRows

        if scan then
            let rows = (Inspector.scanAllAsync db mergeOp ct).GetAwaiter().GetResult()
            printfn ""
            printfn "Live keys: %d" rows.Length

            table
                [ "key"; "value"; "seq"; "expire" ]
                [ for r in rows ->
                      let v =
                          match r.Value with
                          | RowValue.Value v -> v
                          | _ -> [||]

                      [ show (Some r.Key)
                        (if v.Length = 0 then "(empty)" else show (Some v))
                        string r.Seq
                        (match r.ExpireTs with
                         | Some e -> string e
                         | None -> "-") ] ]

    0
