import { readFileSync } from "node:fs";
import process from "node:process";
import { parseNpy } from "../workload/npy.ts";
import { solveBalancedAssignment } from "../solve/solve_balanced_assignment.ts";
import { groupLimitedBounds } from "../solve/group_limited.ts";
import { checkGroupLimit } from "../ops/route.ts";
import { ASSIGNMENT_SOLVERS, type AssignmentSolver } from "../solve/types.ts";
import { asFlagError, type FlagSpec, parseFlags, UsageError } from "./args.ts";
import { withMessage } from "../validate.ts";

const FLAGS: FlagSpec = {
  scores: "string",
  "top-k": "integer",
  "capacity-factor": "number",
  solver: "string",
  "time-limit": "number",
  groups: "integer",
  "top-groups": "integer",
  json: "boolean",
  help: "boolean",
};

/** The help text of `solve`. */
export const SOLVE_HELP =
  `moelab solve: the exact balanced assignment of one score matrix

Usage: moelab solve --scores FILE.npy --top-k K [flags]

  --scores FILE          float32 .npy shaped [tokens, experts], used as given
  --top-k K              experts per token
  --capacity-factor F    capacity ceil(tokens * K / experts * F) (default 1)
  --solver S             ${ASSIGNMENT_SOLVERS.join(", ")} (default auto)
  --time-limit SECONDS   stop the solve after SECONDS (0.001 to 2000000): exit 1
                         with "time limit reached", no answer (default: no limit)
  --groups G             equal groups of consecutive experts (default 1)
  --top-groups L         groups a token may use (default --groups, no limit):
                         below --groups, the group-limited optimum is bracketed
                         (an integer program; docs/algorithms.md section 5):
                         lower bound = a group-limited assignment's objective,
                         upper bound, and the relaxation without the limit;
                         solver ssp, --time-limit for each of its flow solves
  --json                 print { objective, loads, expertPrices, dualityGap, solver, ms };
                         with a group limit also { groups, topGroups, lowerBound,
                         upperBound, relaxation, bracket } (objective = lowerBound)
  --help                 this text
`;

/** The solver's option names, as the flags that set them, in errors. */
const OPTION_FLAGS: Record<string, string> = {
  "options.k": "--top-k",
  "options.capacity": "--capacity-factor",
  "options.capacityFactor": "--capacity-factor",
  "options.solver": "--solver",
  "options.timeLimit": "--time-limit",
  "options.groups": "--groups",
  "options.topGroups": "--top-groups",
  groups: "--groups",
  topGroups: "--top-groups",
  scores: "--scores",
};

/** Runs `solve` with command-line arguments; returns the exit code. */
export async function solveCommand(args: string[]): Promise<number> {
  const flags = parseFlags(args, FLAGS);
  if (flags.help) {
    process.stdout.write(SOLVE_HELP);
    return 0;
  }
  if (typeof flags.scores !== "string") {
    throw new UsageError("--scores FILE.npy is required (see --help)");
  }
  if (flags["top-k"] === undefined) {
    throw new UsageError("--top-k K is required (see --help)");
  }
  const timeLimit = flags["time-limit"] as number | undefined;
  if (timeLimit !== undefined && !(timeLimit >= 0.001 && timeLimit <= 2e6)) {
    throw new UsageError(
      `--time-limit must be a number of seconds in [0.001, 2000000]: current value is ${timeLimit}`,
    );
  }
  const groups = flags.groups as number | undefined;
  const topGroups = flags["top-groups"] as number | undefined;
  if (topGroups !== undefined && groups === undefined) {
    throw new UsageError("--top-groups needs --groups (see --help)");
  }
  const limited = groups !== undefined && (topGroups ?? groups) < groups;
  if (limited && !["auto", "ssp"].includes(String(flags.solver ?? "auto"))) {
    throw new UsageError(
      `--solver ${flags.solver}: the group-limited bracket is solved by ssp (--solver auto or ssp)`,
    );
  }
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(flags.scores);
  } catch (e) {
    throw new UsageError(
      `--scores cannot be read: ${flags.scores} (${(e as Error).message})`,
    );
  }
  let array;
  try {
    array = parseNpy(bytes);
  } catch (e) {
    throw withMessage(e, (m) => `--scores ${flags.scores}: ${m}`);
  }
  if (array.shape.length !== 2) {
    throw new TypeError(
      `--scores must hold a [tokens, experts] array: current shape is [${
        array.shape.join(", ")
      }]`,
    );
  }
  const [tokens, experts] = array.shape;
  const t0 = performance.now();
  let a;
  let bracket;
  try {
    const scores = { data: array.data, tokens, experts };
    const k = flags["top-k"] as number;
    const capacityFactor = flags["capacity-factor"] as number | undefined;
    if (groups !== undefined) {
      checkGroupLimit(experts, k, groups, topGroups ?? groups);
    }
    if (limited) {
      bracket = groupLimitedBounds(scores, {
        k,
        capacityFactor,
        groups,
        topGroups: topGroups!,
        timeLimit,
      });
      a = bracket.assignment;
    }
    a ??= await solveBalancedAssignment(scores, {
      k,
      capacityFactor,
      solver: (flags.solver ?? "auto") as AssignmentSolver,
      timeLimit,
    });
  } catch (e) {
    // The error the solvers document for options.timeLimit.
    if ((e as Error)?.name !== "TimeLimitError") {
      throw asFlagError(e, OPTION_FLAGS);
    }
    process.stderr.write(
      `error: --time-limit ${timeLimit} reached: the ${
        flags.solver ?? "auto"
      } solver stopped before the optimum; no answer\n`,
    );
    return 1;
  }
  const ms = performance.now() - t0;
  if (flags.json) {
    process.stdout.write(
      JSON.stringify({
        objective: a.objective,
        loads: [...a.loads],
        expertPrices: [...a.expertPrices],
        dualityGap: a.dualityGap,
        solver: a.solver,
        ms,
        ...(bracket && {
          groups,
          topGroups,
          lowerBound: bracket.lowerBound,
          upperBound: bracket.upperBound,
          relaxation: bracket.relaxation,
          bracket: bracket.bracket,
        }),
      }) + "\n",
    );
    return 0;
  }
  const lines = [
    `tokens ${tokens}, experts ${experts}, k ${a.k}, capacity ${a.capacity}${
      bracket ? `, at most ${topGroups} of ${groups} groups a token` : ""
    }`,
    `solver      ${a.solver} (${ms.toFixed(1)} ms)`,
    ...(bracket
      ? [
        `optimum     in [${bracket.lowerBound}, ${bracket.upperBound}] (bracket ${
          (100 * bracket.bracket).toPrecision(3)
        } %; the group limit makes it an integer program)`,
        `relaxation  ${bracket.relaxation} (the group limit dropped: an upper bound)`,
        `objective   ${a.objective} (the group-limited assignment below: the lower bound)`,
        `dualityGap  ${a.dualityGap} (of the problem restricted to each token's groups)`,
      ]
      : [`objective   ${a.objective}`, `dualityGap  ${a.dualityGap}`]),
    "expert  load  price",
    ...[...a.loads].map((l, j) =>
      `${String(j).padStart(6)}  ${String(l).padStart(4)}  ${
        a.expertPrices[j].toPrecision(6)
      }`
    ),
  ];
  process.stdout.write(lines.join("\n") + "\n");
  return 0;
}
