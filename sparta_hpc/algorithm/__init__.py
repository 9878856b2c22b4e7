"""The SPARTA algorithm (SPEC section 1) as pure functions: numpy only, no I/O.

Data flow of one iteration:
    matchmaking.draw_instructions / matchmaking.make_duels   (SPEC 1.1-1.2)
    judging.judge_messages -> a model -> judging.parse_score  (SPEC 1.4)
    variants.run_iteration                                    (SPEC 1.5-1.7)
"""
