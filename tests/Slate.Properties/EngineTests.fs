module Slate.Properties.EngineTests

open Expecto

let allTests = testList "Engine" []
