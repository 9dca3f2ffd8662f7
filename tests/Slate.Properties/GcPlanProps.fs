module Slate.Properties.GcPlanProps

open Expecto

let allTests = testList "GcPlan" []
