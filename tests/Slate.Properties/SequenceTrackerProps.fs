module Slate.Properties.SequenceTrackerProps

open Expecto

let allTests = testList "SequenceTracker" []
