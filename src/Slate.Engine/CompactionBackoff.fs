/// Back-off of failing compactions: a source set whose job failed is not proposed again until
/// `poll × 2^failures` (capped at 5 minutes) has passed, or until the manifest no longer holds
/// all of its sources. A plain value; the compactor keeps one and passes its clock readings in.
namespace Slate.Engine

open System
open Slate.Model

/// The failures of one source set.
type BackoffEntry =
    {
        /// Consecutive failed jobs over exactly these sources.
        Failures: int
        /// Until when (Unix ms) the planner leaves them alone.
        RetryAtMs: int64
    }

/// Failed source sets and when each may be proposed again.
type CompactionBackoff = Map<CompactionSources, BackoffEntry>

/// Functions over `CompactionBackoff`.
[<RequireQualifiedAccess>]
module CompactionBackoff =
    /// The longest wait.
    let maxDelay: TimeSpan = TimeSpan.FromMinutes 5.0

    /// No failures.
    let empty: CompactionBackoff = Map.empty

    /// The wait after the `failures`-th consecutive failure (≥ 1): `poll × 2^failures`, at most
    /// `maxDelay` (and at least `poll`).
    let delay (poll: TimeSpan) (failures: int) : TimeSpan =
        let factor = Math.Pow(2.0, float (Math.Clamp(failures, 0, 40)))
        let ms = min maxDelay.TotalMilliseconds (poll.TotalMilliseconds * factor)
        TimeSpan.FromMilliseconds(max poll.TotalMilliseconds ms)

    /// Records a failed job over `sources` at `nowMs`.
    let recordFailure (poll: TimeSpan) (nowMs: int64) (sources: CompactionSources) (b: CompactionBackoff) =
        let failures =
            match Map.tryFind sources b with
            | Some e -> e.Failures + 1
            | None -> 1

        let wait = int64 (delay poll failures).TotalMilliseconds

        Map.add
            sources
            { Failures = failures
              RetryAtMs = nowMs + wait }
            b

    /// Forgets the source sets that `m` no longer holds completely (the manifest changed for them).
    let prune (m: Manifest) (b: CompactionBackoff) : CompactionBackoff =
        let l0 = m.L0 |> List.map (fun h -> h.Id) |> Set.ofList
        let srs = m.Compacted |> List.map (fun sr -> sr.Id) |> Set.ofList

        b
        |> Map.filter (fun s _ -> List.forall l0.Contains s.SourceL0 && List.forall srs.Contains s.SourceRuns)

    /// The source sets the planner must leave alone at `nowMs`.
    let excluded (nowMs: int64) (b: CompactionBackoff) : Set<CompactionSources> =
        b
        |> Map.toSeq
        |> Seq.filter (fun (_, e) -> e.RetryAtMs > nowMs)
        |> Seq.map fst
        |> Set.ofSeq
