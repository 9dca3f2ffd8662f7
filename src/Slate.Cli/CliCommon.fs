/// Pieces every `slate` command shares: aligned tables and the one-line error report.
module Slate.Cli.CliCommon

open System.IO
open Slate
open Slate.Engine

/// The lines of an aligned table (columns padded to their widest cell, two spaces apart), each
/// prefixed with `indent`.
let tableLines (indent: string) (headers: string list) (rows: string list list) : string list =
    let widths =
        headers
        |> List.mapi (fun i h -> rows |> List.fold (fun w r -> max w (String.length (List.item i r))) h.Length)

    let line (cells: string list) =
        List.zip cells widths
        |> List.map (fun (c, w) -> c.PadRight w)
        |> String.concat "  "
        |> fun s -> indent + s.TrimEnd()

    line headers :: List.map line rows

/// Writes an aligned table to `out`.
let writeTable (out: TextWriter) (indent: string) (headers: string list) (rows: string list list) : unit =
    for l in tableLines indent headers rows do
        out.WriteLine l

/// Runs a command; a `SlateException` or `ObjectStoreException` becomes "slate: <message>" on
/// `err` and exit code 1.
let guarded (err: TextWriter) (f: unit -> int) : int =
    try
        f ()
    with
    | :? SlateException as e ->
        err.WriteLine("slate: " + e.Message)
        1
    | :? ObjectStoreException as e ->
        err.WriteLine("slate: " + e.Message)
        1
