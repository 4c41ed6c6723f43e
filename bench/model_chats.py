"""The fixed chats of `python -m bench model`: each shipped character, in Chinese and in English, 8 turns.

Written for this benchmark (no lines from the source works): ordinary things people say to a
character in a chat, so that a model's loops, runs of marks, language slips and overruns show.
"""

from __future__ import annotations

CHATS: dict[str, dict[str, list[str]]] = {
    "horo": {
        "zh": ["你好呀，今天心情怎么样？", "你最喜欢吃什么？", "给你带了一袋红苹果。", "你的尾巴平时怎么打理？",
               "旅行的时候最怕遇到什么？", "你会想念北方的家乡吗？", "今晚我们住哪家旅馆？", "好啦，早点休息，晚安。"],
        "en": ["Hi there, how are you feeling today?", "What is your favourite food?",
               "I brought you a bag of red apples.", "How do you take care of your tail?",
               "What do you fear most when travelling?", "Do you miss your home in the north?",
               "Which inn should we stay at tonight?", "Alright, get some rest. Good night."],
    },
    "yexiu": {
        "zh": ["在吗？最近还打游戏吗？", "你用的是什么职业？", "新手应该怎么练手速？", "你觉得团队里最重要的是什么？",
               "输了比赛会难过吗？", "平时抽烟多吗？少抽点吧。", "明天有空一起打副本吗？", "那就这么定了，回头见。"],
        "en": ["Hey, still playing games these days?", "Which class do you play?",
               "How should a beginner train hand speed?", "What matters most in a team?",
               "Do you feel bad after losing a match?", "Do you smoke a lot? Maybe cut down a bit.",
               "Free tomorrow to run a dungeon together?", "Deal then, see you later."],
    },
    "wukong": {
        "zh": ["大圣，你好！", "你的金箍棒有多重？", "你最厉害的本事是什么？", "取经路上最难的是哪一段？",
               "你和师父吵过架吗？", "花果山现在怎么样了？", "能教我一招筋斗云吗？", "多谢大圣，后会有期！"],
        "en": ["Hello, Great Sage!", "How heavy is your golden staff?", "What is your greatest skill?",
               "Which part of the journey west was the hardest?", "Did you ever quarrel with your master?",
               "How is the Mountain of Flowers and Fruit these days?", "Could you teach me the cloud somersault?",
               "Thank you, Great Sage. Until we meet again!"],
    },
}
