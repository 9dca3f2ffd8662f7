// Slate from an F# script: open a database in a local folder, write, scan, close.
//
//   dotnet build -c Release src/Slate.Engine && dotnet fsi samples/Script.fsx
//
// The engine's NuGet dependencies are referenced by name; the Slate assemblies come from the build.
#r "nuget: BitFaster.Caching, 2.6.1"
#r "nuget: K4os.Compression.LZ4, 1.3.8"
#r "nuget: ZstdSharp.Port, 0.8.8"
#r "nuget: Snappier, 1.3.1"
#r "nuget: System.IO.Hashing, 10.0.0"
#r "../src/Slate.Engine/bin/Release/net10.0/Slate.Model.dll"
#r "../src/Slate.Engine/bin/Release/net10.0/Slate.Engine.dll"

open System.IO
open Slate.Engine

let folder = Path.Combine(Path.GetTempPath(), "slate-script")

task {
    let! db = Db.openLocal folder "script-db"

    for i in 1..1000 do
        let! _ = Db.putString db (sprintf "fruit/%04d" i) (sprintf "apple #%d" i)
        ()

    let! w = Db.putString db "fruit/banana" "yellow"
    do! Db.awaitDurable db w

    let! banana = Db.getString db "fruit/banana"
    printfn "fruit/banana = %A" banana

    let! rows = Db.scanPrefixStrings db "fruit/000"
    printfn "%d keys under fruit/000, first %A" rows.Length (List.head rows)

    do! Db.close db
    printfn "closed; data in %s" (Path.Combine(folder, "script-db"))
}
|> fun t -> t.GetAwaiter().GetResult()
